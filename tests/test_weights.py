"""Official weights by name: the manifest matches the official files, a name is fetched from a server (here one on
127.0.0.1 serving the official layout) into the cache with its sha256 checked, a corrupted download never lands under
the final name, and ``adaptsr.load(NAME)`` / ``adaptsr-infer --model NAME`` / ``adaptsr-weights`` use it."""
import functools
import http.server
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import threading

import pytest

from adaptsr.api.weights import manifest, sha256
from conftest import BENCHMARK, ROOT, WEIGHTS, require


def test_the_manifest_is_every_official_file():
    require(WEIGHTS)
    files = sorted(osp.relpath(osp.join(d, f), WEIGHTS) for d, _, fs in os.walk(WEIGHTS) for f in fs
                   if f.endswith(('.pth', '.pt')))
    entries = manifest()
    assert sorted(e['file'] for e in entries.values()) == files
    for name, e in entries.items():
        path = osp.join(WEIGHTS, e['file'])
        assert (osp.getsize(path), sha256(path)) == (e['size'], e['sha256']), name
        assert e['url'].startswith('https://github.com/') and e['scale'] in (2, 3, 4), name


@pytest.fixture()
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving a copy of two official files in the official layout."""
    root = tmp_path / 'mirror'
    for name in ('etds_m5c16_x2', 'espcn_x2'):
        src = require(osp.join(WEIGHTS, manifest()[name]['file']))
        dst = root / manifest()[name]['file']
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if k != 'ADAPTSR_WEIGHTS'}
    env.update(ADAPTSR_WEIGHTS_MIRROR=f'http://127.0.0.1:{httpd.server_address[1]}', ADAPTSR_CACHE=str(tmp_path / 'c'),
               PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))
    yield {'root': root, 'env': env, 'cache': tmp_path / 'c'}
    httpd.shutdown()


def _run(args, env, cwd, check=True):
    proc = subprocess.run([sys.executable] + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_a_name_is_fetched_checked_and_loaded(server, tmp_path):
    env, cache = server['env'], server['cache']
    out = _run(['-m', 'adaptsr.cli.weights', 'fetch', 'etds_m5c16_x2'], env, tmp_path).stdout
    cached = cache / 'ETDS' / 'ETDS_M5C16_x2.pth'
    assert str(cached) in out and sha256(cached) == manifest()['etds_m5c16_x2']['sha256']
    listing = _run(['-m', 'adaptsr.cli.weights', 'list', '--method', 'etds'], env, tmp_path).stdout
    assert str(cached) in listing and 'etds_m7c48_x4' in listing
    code = ("import json, torch, adaptsr; x = torch.rand(1, 3, 20, 24); a = adaptsr.load('etds_m5c16_x2')(x); "
            f"b = adaptsr.load({str(cached)!r})(x); print(json.dumps([list(a.shape), float((a - b).abs().max())]))")
    shape, diff = json.loads(_run(['-c', code], env, tmp_path).stdout.strip().splitlines()[-1])
    assert shape == [1, 3, 40, 48] and diff == 0.0
    lr = require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X2/babyx2.png'))
    proc = _run(['-m', 'adaptsr.cli.infer', lr, '-o', 'sr', '--model', 'espcn_x2', '--quiet'], env, tmp_path)
    assert 'ESPCN' in proc.stdout and (tmp_path / 'sr' / 'babyx2.png').exists()  # fetched on first use


def test_a_corrupted_download_is_refused_and_not_kept(server, tmp_path):
    env, cache = server['env'], server['cache']
    served = server['root'] / manifest()['etds_m5c16_x2']['file']
    served.write_bytes(served.read_bytes()[:-10] + b'0123456789')  # same size, other bytes
    proc = _run(['-m', 'adaptsr.cli.weights', 'fetch', 'etds_m5c16_x2'], env, tmp_path, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and last.startswith('adaptsr-weights: etds_m5c16_x2: the file downloaded from http')
    assert 'is not the official one' in last
    assert not (cache / 'ETDS' / 'ETDS_M5C16_x2.pth').exists()
    proc = _run(['-m', 'adaptsr.cli.weights', 'fetch', 'etds_m5c16_x3'], env, tmp_path, check=False)  # not served
    assert proc.returncode != 0 and 'download from http' in proc.stderr and 'failed' in proc.stderr
    proc = _run(['-m', 'adaptsr.cli.weights', 'path', 'etds_m6c32_x5'], env, tmp_path, check=False)
    assert "'etds_m6c32_x5' is not an official weights name (did you mean etds_m6c32_x4" in proc.stderr
