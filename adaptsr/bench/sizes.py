"""Large inputs: seconds and peak memory of every method on a 2K LR image, with and without tiles, and what tiling
costs in PSNR (``adaptsr-bench --sizes options/bench/large_x4.yml --json bench_out/large.json``).

The spec (YAML) names:

* ``mosaic``: ``{source: <folder of HR images>, size: [W, H]}``: the LR input is a 2x2 mosaic of the first four
  images of ``source`` at least W/2 x H/2 (sorted by name), each centre-cropped to W/2 x H/2 (e.g. Urban100 HR at
  2048x1536, super-resolved x4 to 8192x6144). No ground truth: speed and memory only.
* ``tiling_psnr`` (optional): ``{lr: <LR folder>, hr: <HR folder>, max_images: N}``: the images on which a model
  marked ``tiling_psnr: true`` is run whole and tiled, with ``--hr``, to measure the PSNR change tiles cause.
* ``models``: ``label -> {args: [adaptsr-infer arguments: --model ..., knobs], tile: N, tile_overlap: N,
  tiling_psnr: bool, method_tiles: bool, mosaic: bool}``. ``method_tiles``: the method decides per tile (APE,
  CABM), so it has no untiled run; ``mosaic: false``: only the tiling PSNR (e.g. another ``--tile-merge``).
* ``threads`` (default 2).

Each run is ``adaptsr-infer`` in a fresh process (``MALLOC_MMAP_THRESHOLD_`` fixed, as the bench's memory probe),
so its row's ``peak_rss_mib`` is the whole process's peak resident memory (model, input, output and the PNG
written) and ``seconds`` the model's test alone. A run that fails (e.g. killed for memory) is reported with its
exit status, not dropped.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile

import cv2
import numpy as np
import yaml

from adaptsr.bench.measure import fresh_process_env
from adaptsr.core.data_util import IMG_EXTENSIONS
from adaptsr.core.options import locate
from adaptsr.utils.atomic import atomic_write
from adaptsr.utils.report import format_table, write_table

SPEC_KEYS = {'mosaic', 'tiling_psnr', 'models', 'threads'}
MODEL_KEYS = {'args', 'tile', 'tile_overlap', 'tiling_psnr', 'method_tiles', 'mosaic'}


def load_spec(path):
    """The spec, environment variables expanded, keys checked.

    Raises:
        ValueError: an unknown key (named), a model without ``args``, or a missing section.
    """
    with open(path) as f:
        spec = yaml.safe_load(f)
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown or 'mosaic' not in spec or 'models' not in spec:
        raise ValueError(f'{path}: keys must be {sorted(SPEC_KEYS)} (mosaic and models required); unknown {unknown}')
    for label, entry in spec['models'].items():
        bad = sorted(set(entry) - MODEL_KEYS)
        if bad or 'args' not in entry:
            raise ValueError(f'{path}: models.{label}: keys {sorted(MODEL_KEYS)} (args required); unknown {bad}')
        entry['args'] = [str(locate(f'models.{label}.args', str(a))) for a in entry['args']]
    spec['mosaic']['source'] = locate('mosaic.source', spec['mosaic']['source'])
    if spec.get('tiling_psnr'):
        for key in ('lr', 'hr'):
            spec['tiling_psnr'][key] = locate(f'tiling_psnr.{key}', spec['tiling_psnr'][key])
    return spec


def make_mosaic(source, width, height, out_path):
    """Write the 2x2 mosaic LR image (see the module docstring); returns the four source file names.

    Raises:
        ValueError: fewer than four images of ``source`` are large enough.
    """
    w2, h2 = width // 2, height // 2
    picked = []
    for name in sorted(os.listdir(source)):
        img = cv2.imread(osp.join(source, name), cv2.IMREAD_COLOR)
        if img is None or img.shape[0] < h2 or img.shape[1] < w2:
            continue
        top, left = (img.shape[0] - h2) // 2, (img.shape[1] - w2) // 2
        picked.append((name, img[top:top + h2, left:left + w2]))
        if len(picked) == 4:
            break
    if len(picked) < 4:
        raise ValueError(f'{source}: fewer than 4 images of at least {w2}x{h2} for a {width}x{height} mosaic')
    tiles = [p[1] for p in picked]
    mosaic = np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
    cv2.imwrite(out_path, mosaic)
    return [p[0] for p in picked]


def run_infer(inputs, args, threads, extra=()):
    """``adaptsr-infer`` in a fresh process; returns (rows of its CSV, None) or (None, the failure in words)."""
    import csv
    out = tempfile.mkdtemp(prefix='adaptsr_sizes_')
    cmd = [sys.executable, '-m', 'adaptsr.cli.infer'] + list(inputs) + ['-o', out, '--quiet', '--threads', str(threads)]
    cmd += list(args) + list(extra)
    proc = subprocess.run(cmd, env=fresh_process_env(), capture_output=True, text=True)
    try:
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ['(no message)'])[-1]
            why = 'killed (SIGKILL: out of memory?)' if proc.returncode in (-9, 137) else f'exit {proc.returncode}'
            return None, f'{why}: {tail}'
        with open(osp.join(out, 'adaptsr_infer.csv')) as f:
            return list(csv.DictReader(f)), None
    finally:
        import shutil
        shutil.rmtree(out, ignore_errors=True)


def _float(row, key):
    value = row.get(key)
    return float(value) if value not in (None, '') else None


def main(args):
    """Run the large-input bench of ``args.sizes`` and write ``args.json`` (+ ``.csv``)."""
    spec = load_spec(args.sizes)
    threads = args.threads or spec.get('threads', 2)
    width, height = spec['mosaic']['size']
    work = tempfile.mkdtemp(prefix='adaptsr_mosaic_')
    mosaic = osp.join(work, f'mosaic_{width}x{height}.png')
    sources = make_mosaic(spec['mosaic']['source'], width, height, mosaic)
    print(f'LR input: {width}x{height} mosaic of {", ".join(sources)} ({spec["mosaic"]["source"]})', flush=True)
    rows = []
    for label, entry in spec['models'].items():
        if entry.get('mosaic') is False:
            continue
        settings = [('method tiles', [])] if entry.get('method_tiles') else \
            [('whole image', ['--tile', '0'])] + ([(f'tiles {entry["tile"]}', ['--tile', str(entry['tile'])] + (
                ['--tile-overlap', str(entry['tile_overlap'])] if entry.get('tile_overlap') is not None else []))]
                if entry.get('tile') else [])
        for name, extra in settings:
            found, failure = run_infer([mosaic], entry['args'], threads, extra)
            row = {'model': label, 'tiling': name}
            if failure:
                row['failure'] = failure
            else:
                r = found[0]
                row.update(sr=f"{r['sr_w']}x{r['sr_h']}", seconds=_float(r, 'seconds'),
                           peak_rss_mib=_float(r, 'peak_rss_mib'), gflops=_float(r, 'gflops'))
            rows.append(row)
            print(format_table([row], list(row)), flush=True)
    psnr_rows = []
    if spec.get('tiling_psnr'):
        tp = spec['tiling_psnr']
        names = sorted(f for f in os.listdir(tp['lr']) if f.lower().endswith(IMG_EXTENSIONS))
        names = names[:tp.get('max_images') or len(names)]
        inputs = [osp.join(tp['lr'], n) for n in names]
        for label, entry in spec['models'].items():
            if not entry.get('tiling_psnr'):
                continue
            extra = ['--tile', str(entry['tile'])] + (['--tile-overlap', str(entry['tile_overlap'])]
                                                      if entry.get('tile_overlap') is not None else [])
            whole, f1 = run_infer(inputs, entry['args'], threads, ['--tile', '0', '--hr', tp['hr']])
            tiled, f2 = run_infer(inputs, entry['args'], threads, extra + ['--hr', tp['hr']])
            if f1 or f2:
                psnr_rows.append({'model': label, 'failure': f1 or f2})
                continue
            diff = [float(t['psnr_y']) - float(w['psnr_y']) for w, t in zip(whole, tiled)]
            psnr_rows.append({'model': label, 'images': len(diff), 'tile': entry['tile'],
                              'tile_overlap': entry.get('tile_overlap', 'default'),
                              'psnr_y_whole': float(np.mean([float(w['psnr_y']) for w in whole])),
                              'psnr_y_tiled': float(np.mean([float(t['psnr_y']) for t in tiled])),
                              'delta_db': float(np.mean(diff)), 'worst_image_delta_db': float(min(diff))})
            print(format_table(psnr_rows[-1:], list(psnr_rows[-1])), flush=True)
    info = {'spec': args.sizes, 'mosaic': {'size': [width, height], 'sources': sources}, 'threads': threads}
    with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
        json.dump({'info': info, 'rows': rows, 'tiling_psnr': psnr_rows}, f, indent=2)
    stem = osp.splitext(args.json)[0]
    write_table(rows, stem, formats=('csv', ))
    if psnr_rows:
        write_table(psnr_rows, stem + '_tiling_psnr', formats=('csv', ))
    print(format_table(rows, ['model', 'tiling', 'sr', 'seconds', 'peak_rss_mib', 'gflops', 'failure']))
    if psnr_rows:
        print(format_table(psnr_rows, list(psnr_rows[0])))
    print(f'written: {args.json}, {stem}.csv' + (f', {stem}_tiling_psnr.csv' if psnr_rows else ''))
