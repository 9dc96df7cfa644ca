"""Long check (-m slow): official CARN-PCSR on the full Urban100 x4 against the reference numbers of the official code.

Reference (the official code, github.com/3587jjh/PCSR, on the same files, --per_image --crop, refinement on, RGB PSNR
shave 4):
CARN 24.0576 dB / 49.27 GFLOPs; CARN-PCSR k = 0 24.0198 / 35.79; ADM 24.0024 / 32.66. Tolerance +-0.005 dB and
+-0.2% FLOPs (near-threshold pixels may flip under a different float summation order).
"""
import json
import os.path as osp

import pytest

from conftest import BENCHMARK, ROOT, WEIGHTS, require, run_script

REFERENCE = {'-': (24.0576, 49.27), 'k=0': (24.0198, 35.79), 'adaptive': (24.0024, 32.66)}


@pytest.mark.slow
def test_urban100_reference_numbers(tmp_path):
    require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth'))
    require(osp.join(BENCHMARK, 'Urban100/LR_bicubic/X4'))
    out = tmp_path / 'urban.json'
    run_script([osp.join(ROOT, 'scripts/benchmark.py'), '-opt', osp.join(ROOT, 'options/test/pcsr_carn_x4.yml'),
                '--datasets', 'Urban100', '--budgets', '0,adaptive', '--threads', '2', '--no-memory', '--no-real-flops',
                '--json', str(out)],
               timeout=3600)
    rows = {r['budget']: r for r in json.load(open(out))['rows']}
    for budget, (psnr, gflops) in REFERENCE.items():
        assert rows[budget]['images'] == 100
        assert rows[budget]['psnr_rgb'] == pytest.approx(psnr, abs=0.005), budget
        assert rows[budget]['gflops'] == pytest.approx(gflops, rel=0.002, abs=0.01), budget
