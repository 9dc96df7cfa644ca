"""Crash test of training: kill -9 a training at random points, resume it with --auto_resume, compare the result.

    python scripts/kill_resume_loop.py -opt options/train/cabm_edsr_baseline_x4_demo.yml --kills 20 \
        --set network_g.num_feat=16 network_g.num_block=2 train.phases.*.iters=10 logger.save_checkpoint_freq=2 \
        --unset val datasets.val --json bench_out/kill_resume_cabm_demo.json

1. ``<name>_ref``: the training, uninterrupted.
2. ``<name>_kill``: the same options, started with ``--auto_resume`` and killed with SIGKILL ``--kills`` times: every
   other kill at a random moment (``--min_delay`` .. ``--max_delay`` seconds after the start), the others while the
   run writes its 1st to 4th file (checkpoint, training state, table: a temporary file of the atomic writer is
   there). Then it runs to the end with ``--auto_resume``.
3. Every file in ``models/`` of the reference (``net_g_latest.pth``, phase models, teachers, tables) is compared with
   the killed run's: tensors exactly (the largest difference is printed otherwise), other files byte for byte.

``--set key=value`` edits the options before the runs (dotted keys; ``*`` matches every list item; values are YAML);
``--unset key`` removes one.
Existing experiment folders of these names are refused unless ``--overwrite`` (they are then deleted).
Exit status 0 when every run finished and every file is equal.
"""
import argparse
import glob
import json
import os
import os.path as osp
import random
import shutil
import signal
import subprocess
import sys
import time

import yaml

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)


def set_option(opt, dotted, value):
    """``opt[a][b]... = value`` for ``dotted`` = ``a.b...``; ``*`` walks every item of a list."""
    keys = dotted.split('.')
    nodes = [opt]
    for key in keys[:-1]:
        nxt = []
        for node in nodes:
            if key == '*':
                nxt.extend(node)
            else:
                nxt.append(node[int(key)] if isinstance(node, list) else node.setdefault(key, {}))
        nodes = nxt
    for node in nodes:
        node[keys[-1]] = value


def _writes_in_progress(exp):
    return glob.glob(osp.join(exp, 'models', '.*.tmp*')) + glob.glob(osp.join(exp, 'training_states', '.*.tmp*'))


def run_once(cmd, env, kill_after=None, kill_on_write=0, exp=None, timeout=3600):
    """Run ``cmd``; SIGKILL it after ``kill_after`` s or during its ``kill_on_write``-th file write (1 = the first).
    Returns (returncode, how, seconds)."""
    stale = set(_writes_in_progress(exp)) if exp else set()  # a killed save's leftovers, removed by the resume
    seen = set()
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    how = 'finished'
    while proc.poll() is None:
        elapsed = time.time() - start
        if kill_on_write:
            seen |= set(_writes_in_progress(exp)) - stale
        writing = kill_on_write and len(seen) >= kill_on_write
        if (kill_after is not None and elapsed >= kill_after) or writing:
            proc.send_signal(signal.SIGKILL)
            how = 'killed while writing' if kill_on_write else 'killed'
            break
        if elapsed > timeout:
            proc.kill()
            raise RuntimeError(f'{cmd} ran past {timeout} s')
        time.sleep(0.002 if kill_on_write else 0.01)
    _, err = proc.communicate()
    if how == 'finished' and proc.returncode != 0:
        raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}')
    return proc.returncode, how, time.time() - start


def _worst_difference(a, b):
    """Largest |a - b| over the tensors of two loaded files (nested dicts/lists, e.g. ``params`` beside ``meta``);
    ``inf`` where the structure, a non-float tensor or a plain value differs."""
    import torch
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
            return float('inf')
        if torch.equal(a, b):
            return 0.0
        return float((a.double() - b.double()).abs().max()) if a.is_floating_point() else float('inf')
    if isinstance(a, dict):
        if not isinstance(b, dict) or set(a) != set(b):
            return float('inf')
        return max((_worst_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return float('inf')
        return max((_worst_difference(x, y) for x, y in zip(a, b)), default=0.0)
    return 0.0 if a == b else float('inf')


def compare(ref_dir, run_dir):
    """{file: 'equal' | 'max |diff| = x' | 'missing' | 'differs'} for every file of the reference's models/."""
    import torch
    out = {}
    for path in sorted(glob.glob(osp.join(ref_dir, '*'))):
        name = osp.basename(path)
        other = osp.join(run_dir, name)
        if not osp.isfile(other):
            out[name] = 'missing'
            continue
        if name.endswith('.pth'):
            a = torch.load(path, map_location='cpu', weights_only=True)
            b = torch.load(other, map_location='cpu', weights_only=True)
            worst = _worst_difference(a, b)
            out[name] = 'equal' if worst == 0 else f'max |diff| = {worst:.3g}'
        else:
            out[name] = 'equal' if open(path, 'rb').read() == open(other, 'rb').read() else 'differs'
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='a training options file')
    parser.add_argument('--kills', type=int, default=20)
    parser.add_argument('--min_delay', type=float, default=2.0, help='seconds after start (random kills)')
    parser.add_argument('--max_delay', type=float, default=None,
                        help='default: a quarter of the reference run time (so most runs are killed, not finished)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE')
    parser.add_argument('--unset', nargs='*', default=[], metavar='KEY', help='top-level or dotted keys to remove')
    parser.add_argument('--threads', type=int, default=2, help='OMP_NUM_THREADS of every run (the same for all)')
    parser.add_argument('--json', default=None, help='write the report here (.json)')
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    from adaptsr.core.outputs import OutputPlanError, check_plan
    from adaptsr.utils.atomic import atomic_write

    with open(args.opt) as f:
        opt = yaml.safe_load(f)
    for item in args.set:
        key, _, value = item.partition('=')
        set_option(opt, key, yaml.safe_load(value))
    for key in args.unset:
        *parents, last = key.split('.')
        node = opt
        for p in parents:
            node = node[p]
        node.pop(last, None)
    if 'train' in opt and opt['train'].get('phases'):
        opt['train']['total_iter'] = sum(int(p['iters']) for p in opt['train']['phases'])
    base = opt['name']
    names = {'ref': f'{base}_ref', 'kill': f'{base}_kill'}
    exps = {k: osp.join(ROOT, 'experiments', n) for k, n in names.items()}
    if args.json:
        if not args.json.endswith('.json'):
            parser.error('--json must name a .json file')
        try:
            check_plan([(args.json, 'report')], [args.opt], args.overwrite)
        except OutputPlanError as err:
            parser.error(str(err))
    for exp in exps.values():
        for old in [exp] + glob.glob(exp + '_archived_*'):
            if osp.exists(old):
                if not args.overwrite:
                    parser.error(f'{old} exists; pass --overwrite to delete it first')
                shutil.rmtree(old)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED='1')
    ymls = {}
    for key, name in names.items():
        ymls[key] = osp.join(ROOT, 'experiments', f'.{name}.yml')
        os.makedirs(osp.dirname(ymls[key]), exist_ok=True)
        with open(ymls[key], 'w') as f:
            yaml.safe_dump(dict(opt, name=name), f, sort_keys=False)
    train = [sys.executable, osp.join(ROOT, 'train.py'), '-opt']

    _, _, ref_time = run_once(train + [ymls['ref']], env)
    print(f'reference: {ref_time:.1f} s')
    rng = random.Random(args.seed)
    max_delay = args.max_delay or max(ref_time / 4, args.min_delay + 1)
    events = []
    for i in range(args.kills):
        on_write = rng.randint(1, 4) if i % 2 == 1 else 0  # during the 1st..4th file this run writes
        delay = None if on_write else rng.uniform(args.min_delay, max_delay)
        code, how, seconds = run_once(train + [ymls['kill'], '--auto_resume'], env, kill_after=delay,
                                      kill_on_write=on_write, exp=exps['kill'])
        states = sorted(int(osp.splitext(osp.basename(p))[0]) for p in glob.glob(
            osp.join(exps['kill'], 'training_states', '*.state')))
        events.append({'run': i + 1, 'how': how, 'write': on_write or None, 'seconds': round(seconds, 2),
                       'latest_state': max(states or [0])})
        print(f'run {i + 1:2d}: {how}{f" (write {on_write})" if on_write and how != "finished" else ""} after '
              f'{seconds:5.1f} s; latest state: iteration {max(states or [0])}')
        if how == 'finished':
            break
    _, how, seconds = run_once(train + [ymls['kill'], '--auto_resume'], env)
    print(f'final run: {how} after {seconds:.1f} s')
    result = compare(osp.join(exps['ref'], 'models'), osp.join(exps['kill'], 'models'))
    leftovers = _writes_in_progress(exps['kill'])
    archived = glob.glob(exps['kill'] + '_archived_*')
    for name, verdict in result.items():
        print(f'  {name}: {verdict}')
    kills = sum(e['how'] != 'finished' for e in events)
    on_write = sum(e['how'] == 'killed while writing' for e in events)
    print(f'kills: {kills} ({on_write} while writing); temporary files left: {len(leftovers)}; experiment folders '
          f'archived by BasicSR (a kill before the first state): {len(archived)}')
    ok = all(v == 'equal' for v in result.values())
    print('every file equal to the uninterrupted run' if ok else 'DIFFERENT from the uninterrupted run')
    if args.json:
        with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
            json.dump({'options': args.opt, 'set': args.set, 'reference_seconds': ref_time, 'events': events,
                       'files': result, 'temporary_files_left': leftovers, 'archived': archived, 'equal': ok}, f,
                      indent=2)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
