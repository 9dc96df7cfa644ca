"""The work of ``adaptsr-infer`` (:mod:`adaptsr.cli.infer` parses its flags without importing torch, for a fast
``--help``, then runs :func:`finish`)."""
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import torch
from basicsr.utils import img2tensor
from basicsr.utils.registry import MODEL_REGISTRY
from tqdm import tqdm

from adaptsr.api import build_model, load
from adaptsr.api.flags import knob_flags, model_options, side_file_keys, summary_stats
from adaptsr.api.images import (IMAGE_EXTENSIONS, find_hr, finish_image, list_inputs, quality, quantize,  # noqa: F401
                                read_hr, read_image)
from adaptsr.bench.measure import peak_rss_bytes, reset_peak_rss, timed_test
from adaptsr.cli.errors import one_line_errors
from adaptsr.core.errors import InferError
from adaptsr.core.outputs import check_plan
from adaptsr.utils.report import format_table, write_table


def warm_up(model, rgb, size=48):
    """One untimed test on a corner of the first image (at most ``size`` pixels a side), so that one-time work
    (SMSR's sparse kernel build, allocator growth, cost tables) is not counted in the first image's seconds."""
    crop = np.ascontiguousarray(rgb[:size, :size])
    model.feed_data({'lq': img2tensor(crop, bgr2rgb=False, float32=True).unsqueeze(0).to(model.device)})
    model.test()
    del model.lq, model.output


def map_names_of(opt, maps):
    """The routing-map names (``<stem>_<name>.png``) the model of ``opt`` writes with ``--maps`` (its model class's
    ``routing_map_names``); none without ``--maps`` or for an exported model."""
    if not maps:
        return ()
    if opt['model_type'] not in MODEL_REGISTRY:
        return ()
    return tuple(getattr(MODEL_REGISTRY.get(opt['model_type']), 'routing_map_names', ()))


def finished_inputs(args, files):
    """``--skip-existing``: the inputs whose SR image (and maps, with ``--maps``) an earlier run wrote, and that
    run's rows by image name (from ``adaptsr_infer.json``, where it is readable; rows with an error are run again)."""
    previous = {}
    table = osp.join(args.output, 'adaptsr_infer.json')
    if osp.isfile(table):
        try:
            with open(table) as f:
                previous = {r['image']: r for r in json.load(f) if not r.get('error')}
        except (ValueError, KeyError, TypeError):
            previous = {}
    done = set()
    for path in files:
        stem = osp.splitext(osp.basename(path))[0]
        if osp.isfile(osp.join(args.output, stem + '.png')) and osp.basename(path) in previous:
            done.add(path)
    return done, previous


def planned_outputs(out_dir, files, map_names=()):
    """Every file the run writes, with what writes it: the SR image and the maps of each input, and the tables.

    Returns:
        list[tuple[str, str]]: ``(path, what)`` (see :func:`adaptsr.core.outputs.check_plan`).
    """
    plan = []
    for f in files:
        stem = osp.splitext(osp.basename(f))[0]
        plan.append((osp.join(out_dir, stem + '.png'), f'SR image of {f}'))
        plan += [(osp.join(out_dir, f'{stem}_{name}.png'), f'{name} map of {f}') for name in map_names]
    plan += [(osp.join(out_dir, 'adaptsr_infer' + e), 'table of the run') for e in ('.csv', '.json')]
    return plan


def run_inputs(args, files):
    """The files the run reads: the images, the model and options files, the CABM table and the HR images."""
    given = [args.model, args.opt] + [getattr(args, key) for key in side_file_keys()]
    inputs = list(files) + [p for p in given if p and osp.isfile(p)]
    if args.hr and osp.isdir(args.hr):
        inputs += [osp.join(args.hr, f) for f in os.listdir(args.hr)]
    return inputs


def load_model(args):
    """The model of ``args`` (``-opt`` or ``--model``: a checkpoint, ``bicubic``, ONNX or TFLite), not built yet.

    Returns:
        tuple: ``(opt, build)``: the options (``scale``, ``network_g.type``, ``model_type``) and a function that
        builds the model.
    """
    kind = {'.onnx': 'ONNX', '.tflite': 'TFLite'}.get(osp.splitext(args.model or '')[1].lower())
    if kind:
        if args.opt or any(getattr(args, k) not in (None, False) for k in knob_flags()) or args.tile or args.maps:
            raise InferError(f'an {kind} model takes no -opt, knobs, --tile or --maps')
        runner = load(args.model, args.scale, threads=args.threads)
        return runner.opt, lambda: runner.model
    opt = model_options(args)
    return opt, lambda: build_model(opt)


def _infer_one(model, args, path, scale, warm):
    """Super-resolve one file into ``args.output``; returns its row. Raises InferError for a bad file."""
    image = read_image(path)
    stem = osp.splitext(osp.basename(path))[0]
    hr_path = find_hr(args.hr, stem, scale) if args.hr else None
    # read (and a mismatched HR refused) before the SR is written
    hr_rgb = read_hr(hr_path, image['rgb'].shape[:2], scale) if hr_path else None
    if not warm:
        warm_up(model, image['rgb'])
    lq = img2tensor(image['rgb'], bgr2rgb=False, float32=True).unsqueeze(0).to(model.device)
    model.feed_data({'lq': lq})
    seconds = timed_test(model, args.device, count_real=args.real_flops)
    bgr = quantize(model.output[0], image['bits'])
    sr_h, sr_w = bgr.shape[:2]
    del model.output
    out_path = osp.join(args.output, stem + '.png')
    if not cv2.imwrite(out_path, finish_image(bgr, image, scale)):
        raise InferError(f'{out_path}: could not be written')
    sr_u8 = bgr if image['bits'] == 8 else (bgr.astype(np.float32) / 257).round().astype(np.uint8)
    del bgr
    values = model.cost_metric_values() if model.val_opt.get('cost', True) else {}
    row = {'image': osp.basename(path), 'lr_h': image['rgb'].shape[0], 'lr_w': image['rgb'].shape[1],
           'sr_h': sr_h, 'sr_w': sr_w, 'mode': image['mode'], 'bits': image['bits'],
           'seconds': seconds, 'gflops': values.get('gflops'), 'gflops_real': values.get('gflops_real'),
           'gflops_full': values.get('gflops_full')}
    row.update({k: values[k] for k in getattr(model, 'summary_stats', ()) if k in values})
    if hr_path:
        row['psnr_y'], row['ssim_y'] = quality(sr_u8, hr_rgb, scale)
        del hr_rgb
        row['hr'] = osp.basename(hr_path)
    if args.maps:
        maps = model.save_extra_images(out_path, sr_u8)
        row['maps'] = ';'.join(osp.basename(m) for m in maps)
    row['output'] = osp.basename(out_path)
    del model.lq, sr_u8
    return row


def run(args):
    """Run ``adaptsr-infer`` (see the module docstring). The outputs are planned before anything runs
    (:func:`planned_outputs`, :func:`adaptsr.core.outputs.check_plan`): an SR image or map that would replace an
    input, another output of the run or (without ``--overwrite``) an existing file refuses the whole run. An input
    that cannot be read (or whose ``--hr`` file is missing or of another size) is reported in its row's ``error``
    and the run goes on with the others.

    Returns:
        tuple: the rows (one per image, also written as CSV/JSON) and the options.

    Raises:
        InferError: bad inputs/options; OutputPlanError: outputs that collide, replace inputs or exist.
    """
    try:
        reset_peak_rss()
        track_rss = True
    except OSError:  # not Linux: no peak memory in the rows
        track_rss = False
    files = list_inputs(args.inputs)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise InferError('--device cuda, but torch sees no CUDA device')
    if args.hr and not osp.isdir(args.hr):
        raise InferError(f'--hr {args.hr}: not a folder')
    if args.threads:
        torch.set_num_threads(args.threads)
    opt, build_model = load_model(args)
    done, previous = finished_inputs(args, files) if args.skip_existing else (set(), {})
    todo = [f for f in files if f not in done]
    plan = planned_outputs(args.output, todo, map_names_of(opt, args.maps))
    if args.skip_existing:  # the tables are rewritten with the earlier rows kept
        plan = [(p, what) for p, what in plan if not p.startswith(osp.join(args.output, 'adaptsr_infer.'))]
    check_plan(plan, run_inputs(args, files), args.overwrite)
    model = build_model()
    scale = opt['scale']
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as err:
        raise InferError(f'-o {args.output}: the folder cannot be made ({err.strerror}: {err.filename})') from err
    rows, warm = [], False
    for path in tqdm(files, unit='image', disable=args.quiet, desc='adaptsr-infer'):
        if path in done:  # --skip-existing: its SR image is there; its row from the earlier run, where there is one
            rows.append(previous.get(osp.basename(path), {'image': osp.basename(path), 'skipped': 'exists'}))
            continue
        if track_rss:
            reset_peak_rss()
        try:
            row = _infer_one(model, args, path, scale, warm)
            warm = True
        except (InferError, ValueError, RuntimeError) as err:  # this image only (unreadable, too small, memory)
            why = str(err) if isinstance(err, InferError) else f'{path}: {type(err).__name__}: {err}'
            row = {'image': osp.basename(path), 'error': why.splitlines()[0]}
            if not args.quiet:
                tqdm.write(f'adaptsr-infer: {row["error"]} (skipped; the run goes on)')
        row['peak_rss_mib'] = peak_rss_bytes() / 2**20 if track_rss else None
        rows.append(row)
    write_table(rows, osp.join(args.output, 'adaptsr_infer'))
    return rows, opt


def finish(args):
    """Run ``adaptsr-infer`` on parsed ``args`` (:func:`adaptsr.cli.infer.parse_args`): the table, the summary line
    and the exit status."""
    with one_line_errors('adaptsr-infer', InferError, OSError):
        rows, opt = run(args)
    cols = ['image', 'mode', 'bits', 'lr_w', 'lr_h', 'seconds', 'gflops', 'gflops_real', 'gflops_full'] + \
        summary_stats() + \
        ['psnr_y', 'ssim_y', 'maps', 'error']
    print(format_table(rows, cols))
    net = opt['network_g']['type']
    failed = [r for r in rows if r.get('error')]
    print(f'{len(rows) - len(failed)} image(s) x{opt["scale"]} with {net} ({opt["model_type"]}) -> {args.output} '
          f'(adaptsr_infer.csv, adaptsr_infer.json)')
    if failed:
        sys.exit(f'adaptsr-infer: {len(failed)} of {len(rows)} input(s) failed (their rows in adaptsr_infer.csv say '
                 f'why): ' + '; '.join(r['error'] for r in failed[:3]) + ('; ...' if len(failed) > 3 else ''))

