"""Super-resolve your own images with any adaptsr model: ``adaptsr-infer`` (or ``python -m adaptsr.infer``).

Examples::

    # a checkpoint alone: the arch, its sizes, the scale and the model are recognised from the weights
    adaptsr-infer photos/ -o out/ --model $ADAPTSR_WEIGHTS/PCSR/carn-pcsr-phase1/iter_last.pth --k 0 --maps
    adaptsr-infer 'photos/*.jpg' -o out/ --model experiments/ape_ecbsr_m6c40_x4_291/models/net_g_latest.pth \
        --exit-threshold 0.9 --maps
    adaptsr-infer photo.png -o out/ --model experiments/cabm_ecbsr_m6c40_x4_291/models/net_g_latest.pth \
        --calibration 7.4 --maps                  # cabm_lut.json beside the checkpoint is found (or --cabm-lut)
    adaptsr-infer photos/ -o out/ --model $ADAPTSR_WEIGHTS/SMSR/SMSR_x2_model_1000.pt --maps
    adaptsr-infer photos/ -o out/ --model $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --tile 256 --tile-overlap 16
    adaptsr-infer photos/ -o out/ --model bicubic --scale 4
    # or a test options file (its network_g / path / val; its datasets are not read)
    adaptsr-infer photos/ -o out/ -opt options/test/pcsr_carn_x4.yml --adaptive --hr photos_hr/

Per input it writes ``<out>/<stem>.png`` (the SR image), with ``--maps`` the method's routing pictures
(``<stem>_classes.png`` PCSR, ``_exits.png`` APE, ``_bits.png`` CABM, ``_masks.png`` SMSR), and one row per image in
``<out>/adaptsr_infer.csv`` / ``.json``: sizes, seconds (the model's test, without reading and writing), GFLOPs
spent and of the full model (FLOPs = 2 x multiply-adds, each method's paper convention), ``gflops_real`` (2 x the
multiply-adds that actually ran: counted in a second, untimed run for an adaptive model; ``--no-real-flops`` skips
it), the method's statistics
(PCSR ``heavy_ratio``, APE ``mean_exit``, CABM ``fab`` = average bits, SMSR ``mask_density``/``eta``) and, with
``--hr``, PSNR/SSIM on Y (crop_border = scale) against the ground truth of the same stem; ``peak_rss_mib`` is the
process's peak resident memory (MiB, Linux ``VmHWM``, reset before each image) while the image was read, super-resolved
and written.

Images: 8- and 16-bit PNG/TIFF, JPEG, WebP, BMP. Grey in, grey out (the network sees the grey image in three
channels; its output's luma is written). An alpha channel is upscaled separately by bicubic interpolation and
written back. A 16-bit input gives a 16-bit output (the network runs in float32 on [0, 1]; PSNR with ``--hr`` is
computed at 8 bits). Existing outputs are never replaced unless ``--overwrite``, and an input never (the outputs
are planned before the run, see :func:`run`). An input that cannot be read is reported in the table's ``error``
column and the others are processed; the command then exits with status 1.
"""
import argparse
import glob
import math
import os
import os.path as osp
import sys

import cv2
import numpy as np
import torch

from adaptsr.cli.errors import int_at_least
from adaptsr.data.data_util import IMG_EXTENSIONS as IMAGE_EXTENSIONS

#: ``--tile`` without ``--tile-overlap``: LR pixels of overlap (at most a quarter of the tile) for a model whose tiles
#: only bound memory (APE and CABM decide per tile and keep their own default overlap)
DEFAULT_TILE_OVERLAP = 16


class InferError(ValueError):
    """A bad input, option or model for ``adaptsr-infer`` (the message names it)."""


# ------------------------------------------------------------------------------------------------ images
def list_inputs(specs):
    """Image files named by ``specs``: files, folders (their images, sorted, not recursive) or glob patterns.

    Raises:
        InferError: a spec that names no image, or two inputs with the same stem (their outputs would collide).
    """
    files = []
    for spec in specs:
        if osp.isdir(spec):
            found = sorted(osp.join(spec, f) for f in os.listdir(spec) if f.lower().endswith(IMAGE_EXTENSIONS))
        elif osp.isfile(spec):
            found = [spec]
        else:
            found = sorted(f for f in glob.glob(spec) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            raise InferError(f'{spec}: no image (not a file, a folder with images or a glob matching any; '
                             f'extensions {", ".join(IMAGE_EXTENSIONS)})')
        files += found
    stems = {}
    for f in files:
        stem = osp.splitext(osp.basename(f))[0]
        if stem in stems and osp.abspath(stems[stem]) != osp.abspath(f):
            raise InferError(f'{stems[stem]} and {f} have the same stem; their SR images would both be {stem}.png')
        stems[stem] = f
    return list(dict.fromkeys(stems.values()))


def read_image(path):
    """An input image as the network's RGB input and what is needed to write it back like the input.

    Returns:
        dict: ``rgb`` (H, W, 3) float32 RGB in [0, 1]; ``alpha`` (H, W) float32 in [0, 1] or None; ``mode``
        ('grey', 'rgb' or 'rgba'); ``bits`` (8 or 16).

    Raises:
        InferError: unreadable file, or an unsupported depth/channel count.
    """
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InferError(f'{path}: cannot be read as an image')
    if img.dtype == np.uint8:
        bits, img = 8, img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        bits, img = 16, img.astype(np.float32) / 65535.0
    else:
        raise InferError(f'{path}: {img.dtype} pixels are not supported (8- or 16-bit integers)')
    alpha = None
    if img.ndim == 2 or img.shape[2] == 1:
        mode, bgr = 'grey', np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    elif img.shape[2] == 3:
        mode, bgr = 'rgb', img
    elif img.shape[2] == 4:
        mode, bgr, alpha = 'rgba', img[:, :, :3], img[:, :, 3]
    else:
        raise InferError(f'{path}: {img.shape[2]} channels are not supported (1, 3 or 4)')
    return {'rgb': np.ascontiguousarray(bgr[:, :, ::-1]), 'alpha': alpha, 'mode': mode, 'bits': bits}


def quantize(output, bits):
    """The network's output as an image: (3, H, W) float RGB tensor -> (H, W, 3) uint8/uint16 BGR array, clipped to
    [0, 1] and rounded (one float temporary, so that an 8K output is not held several times over)."""
    peak = 65535.0 if bits == 16 else 255.0
    q = output.detach().clamp(0, 1).mul_(peak).round_()
    out = q.permute(1, 2, 0).cpu().numpy().astype(np.uint16 if bits == 16 else np.uint8)
    del q
    return np.ascontiguousarray(out[:, :, ::-1])


def finish_image(sr_bgr, image, scale):
    """The SR image in the input's form: grey -> its luma, RGBA -> the bicubic-upscaled alpha appended.

    Args:
        sr_bgr (ndarray): (H, W, 3) BGR of the input's depth (:func:`quantize`). image (dict): :func:`read_image`'s.
        scale (int): the scale (for the alpha).

    Returns:
        ndarray: (H, W) or (H, W, 3|4) uint8/uint16 in OpenCV's channel order, ready for ``cv2.imwrite``.
    """
    if image['mode'] == 'grey':
        return cv2.cvtColor(sr_bgr, cv2.COLOR_BGR2GRAY)
    if image['mode'] == 'rgba':
        h, w = sr_bgr.shape[:2]
        peak = np.iinfo(sr_bgr.dtype).max
        alpha = np.clip(cv2.resize(image['alpha'], (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
        return np.concatenate([sr_bgr, (alpha * peak).round().astype(sr_bgr.dtype)[:, :, None]], axis=2)
    return sr_bgr


def find_hr(hr_dir, stem, scale):
    """The ground truth of ``stem`` in ``hr_dir``: same stem, or the stem without an ``x<scale>`` suffix (the EDSR
    LR naming, ``img_001x4`` -> ``img_001``), any image extension.

    Raises:
        InferError: none found (the names tried are listed).
    """
    names = [stem] + ([stem[:-len(f'x{scale}')]] if stem.endswith(f'x{scale}') else [])
    for name in names:
        for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
            path = osp.join(hr_dir, name + ext)
            if osp.isfile(path):
                return path
    raise InferError(f'--hr {hr_dir}: no ground truth for {stem} (tried {", ".join(n + ".*" for n in names)})')


def read_hr(hr_path, lr_shape, scale):
    """The HR image of an LR input: RGB (H, W, 3) float32 in [0, 1] with H, W = ``scale`` x ``lr_shape`` (h, w). An
    HR image up to ``scale - 1`` pixels larger (an LR made from it without a mod-crop) is cropped top-left, as
    BasicSR's paired datasets do.

    Raises:
        InferError: the HR size does not match ``scale`` x the LR size (the file is named).
    """
    rgb = read_image(hr_path)['rgb']
    h, w = rgb.shape[:2]
    if (h // scale, w // scale) != tuple(lr_shape):
        raise InferError(f'HR {hr_path}: {w}x{h} is not x{scale} of the {lr_shape[1]}x{lr_shape[0]} input')
    return rgb[:lr_shape[0] * scale, :lr_shape[1] * scale]


def quality(sr_u8, hr_rgb, scale):
    """PSNR/SSIM (Y, crop_border = scale) of an 8-bit SR image against its HR image, as ``test.py`` computes them.

    Args:
        sr_u8 (ndarray): (H, W, 3) uint8 BGR. hr_rgb (ndarray): (H, W, 3) float32 RGB in [0, 1] (:func:`read_hr`).
        scale (int): the scale (crop_border).
    """
    from basicsr.metrics import calculate_psnr, calculate_ssim
    hr_u8 = (np.clip(hr_rgb[:, :, ::-1], 0, 1) * 255).round().astype(np.uint8)
    psnr = calculate_psnr(sr_u8, hr_u8, crop_border=scale, test_y_channel=True)
    ssim = calculate_ssim(sr_u8, hr_u8, crop_border=scale, test_y_channel=True) if min(sr_u8.shape[:2]) > \
        2 * scale + 11 else math.nan
    return psnr, ssim


# ------------------------------------------------------------------------------------------------ the model
def model_options(args):
    """BasicSR test options for the model of ``args`` (``-opt`` or ``--model``; :func:`adaptsr.api.options_for`),
    the command's knobs and tile flags set.

    Raises:
        InferError: neither or both of ``-opt``/``--model``, a knob the model does not have (the model is named), tile
            flags without tiles. LoadError: see :func:`adaptsr.api.options_for`.
        ConversionError / CheckpointError / FileNotFoundError: a checkpoint that is not recognised (the supported
            archs are listed) or cannot be read.
    """
    from adaptsr.api import options_for
    from adaptsr.options import check_options
    if bool(args.opt) == bool(args.model):
        raise InferError('give the model as -opt <test options YAML> or as --model <checkpoint | bicubic>')
    source = args.opt or args.model
    if args.model == 'bicubic' and args.scale is None:
        raise InferError('--model bicubic needs --scale')
    opt = options_for(source, args.scale, args.device, args.cabm_lut, args.force_yml, args.output)
    val = opt['val']
    val['crop_mode'] = 'none'
    if args.tile is not None:
        val['tile_size'] = args.tile or None
    # a model that tiles only to bound memory (not APE/CABM, whose tiles are their decision units): hide the seams
    memory_tiles = bool(args.tile) and _declared_val(opt['model_type']).get('tile_size') is None
    if args.tile_overlap is not None:
        val['tile_overlap'] = args.tile_overlap
    elif memory_tiles:
        val['tile_overlap'] = min(DEFAULT_TILE_OVERLAP, args.tile // 4)
    if args.tile_merge is not None:
        val['tile_merge'] = args.tile_merge
    elif memory_tiles:
        val['tile_merge'] = 'crop'
    for dest, (model_type, spec) in knob_flags().items():
        value = getattr(args, dest)
        if value is None or value is False:
            continue
        if opt['model_type'] != model_type:
            raise InferError(f'{spec["flag"]} is a knob of {model_type}, but {source} is a '
                             f'{opt["network_g"]["type"]} ({opt["model_type"]})')
        val[spec['val']] = spec.get('value', value)
    tile = val.get('tile_size', _declared_val(opt['model_type']).get('tile_size'))
    if not tile and (args.tile_overlap is not None or args.tile_merge is not None):
        raise InferError('--tile-overlap / --tile-merge need tiles: give --tile N (this model runs whole images)')
    check_options(opt)
    return opt


def _declared_val(model_type):
    from basicsr.utils.registry import MODEL_REGISTRY
    import adaptsr.models  # noqa: F401
    from adaptsr.options import declared
    return declared(MODEL_REGISTRY.get(model_type), 'val_options')


def warm_up(model, rgb, size=48):
    """One untimed test on a corner of the first image (at most ``size`` pixels a side), so that one-time work
    (SMSR's sparse kernel build, allocator growth, cost tables) is not counted in the first image's seconds."""
    from basicsr.utils import img2tensor
    crop = np.ascontiguousarray(rgb[:size, :size])
    model.feed_data({'lq': img2tensor(crop, bgr2rgb=False, float32=True).unsqueeze(0).to(model.device)})
    model.test()
    del model.lq, model.output


# ------------------------------------------------------------------------------------------------ the command
def knob_flags():
    """The knob flags every registered model declares (``knob_flags``): ``dest -> (model_type, spec)``."""
    from basicsr.utils.registry import MODEL_REGISTRY
    import adaptsr.models  # noqa: F401  (registrations)
    flags = {}
    for name, cls in MODEL_REGISTRY._obj_map.items():
        for dest, spec in (cls.__dict__.get('knob_flags') or {}).items():
            flags.setdefault(dest, (name, spec))
    return flags


def summary_stats():
    """The statistics the one-row-per-image table keeps: every registered model's ``summary_stats``, in order."""
    from basicsr.utils.registry import MODEL_REGISTRY
    import adaptsr.models  # noqa: F401  (registrations)
    stats = []
    for cls in MODEL_REGISTRY._obj_map.values():
        stats += [s for s in cls.__dict__.get('summary_stats', ()) if s not in stats]
    return stats


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='adaptsr-infer', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns (quoted)')
    parser.add_argument('-o', '--output', required=True, help='output folder (created)')
    parser.add_argument('-opt', '--opt', default=None, help='test options YAML (network_g, path, val)')
    parser.add_argument('--model', default=None,
                        help='checkpoint (adaptsr or official; recognised from its weights), "bicubic", or an ONNX '
                             'or TFLite model (fp32 or INT8, adaptsr-export; run by onnxruntime or LiteRT)')
    parser.add_argument('--scale', type=int_at_least(1), default=None,
                        help='the scale, where the checkpoint does not say it')
    parser.add_argument('--force_yml', nargs='+', default=[], help='with -opt: override options, key:sub=value')
    for dest, (_, spec) in knob_flags().items():  # each model's knobs, declared on the model
        if 'value' in spec:
            parser.add_argument(spec['flag'], dest=dest, action='store_true', help=spec['help'])
        else:
            parser.add_argument(spec['flag'], dest=dest, type=spec['type'], default=None, help=spec['help'])
    parser.add_argument('--cabm-lut', dest='cabm_lut', default=None,
                        help='CABM: edge-to-bit table (default: cabm_lut.json beside the checkpoint; without one the '
                             'trained CADyQ selectors choose the bits)')
    parser.add_argument('--tile', type=int_at_least(0), default=None,
                        help="tile size in LR pixels, to bound memory (0: whole image; default: the model's own, "
                             'i.e. whole images except APE 48 and CABM 96, their decision units)')
    parser.add_argument('--tile-overlap', dest='tile_overlap', type=int_at_least(0), default=None,
                        help=f'tile overlap in LR pixels (default with --tile: {DEFAULT_TILE_OVERLAP}, at most a '
                             "quarter of the tile; APE/CABM: their own)")
    parser.add_argument('--tile-merge', dest='tile_merge', choices=('average', 'crop'), default=None,
                        help="how overlapping tiles combine (default with --tile: crop, each tile's core, for a "
                             "model that tiles only to bound memory; APE/CABM: average, their protocol)")
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--threads', type=int_at_least(1), default=None, help='torch CPU threads')
    parser.add_argument('--maps', action='store_true', help="write the method's routing pictures next to each image")
    parser.add_argument('--hr', default=None, help='folder of ground-truth HR images (same stems): PSNR/SSIM')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs (refused otherwise)')
    parser.add_argument('--no-real-flops', dest='real_flops', action='store_false',
                        help='skip gflops_real (the multiply-adds that actually ran, x 2), which an adaptive model '
                             'counts in a second, untimed run of each image')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def map_names_of(opt, maps):
    """The routing-map names (``<stem>_<name>.png``) the model of ``opt`` writes with ``--maps`` (its model class's
    ``routing_map_names``); none without ``--maps`` or for an exported model."""
    if not maps:
        return ()
    from basicsr.utils.registry import MODEL_REGISTRY
    import adaptsr.models  # noqa: F401
    if opt['model_type'] not in MODEL_REGISTRY:
        return ()
    return tuple(getattr(MODEL_REGISTRY.get(opt['model_type']), 'routing_map_names', ()))


def planned_outputs(out_dir, files, map_names=()):
    """Every file the run writes, with what writes it: the SR image and the maps of each input, and the tables.

    Returns:
        list[tuple[str, str]]: ``(path, what)`` (see :func:`adaptsr.utils.outputs.check_plan`).
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
    inputs = list(files) + [p for p in (args.model, args.opt, args.cabm_lut) if p and osp.isfile(p)]
    if args.hr and osp.isdir(args.hr):
        inputs += [osp.join(args.hr, f) for f in os.listdir(args.hr)]
    return inputs


def load_model(args):
    """The model of ``args`` (``-opt`` or ``--model``: a checkpoint, ``bicubic``, ONNX or TFLite), not built yet.

    Returns:
        tuple: ``(opt, build)``: the options (``scale``, ``network_g.type``, ``model_type``) and a function that
        builds the model.
    """
    from adaptsr.api import build_model, load
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
    from basicsr.utils import img2tensor
    from adaptsr.utils.benchmark import timed_test
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
    (:func:`planned_outputs`, :func:`adaptsr.utils.outputs.check_plan`): an SR image or map that would replace an
    input, another output of the run or (without ``--overwrite``) an existing file refuses the whole run. An input
    that cannot be read (or whose ``--hr`` file is missing or of another size) is reported in its row's ``error``
    and the run goes on with the others.

    Returns:
        tuple: the rows (one per image, also written as CSV/JSON) and the options.

    Raises:
        InferError: bad inputs/options; OutputPlanError: outputs that collide, replace inputs or exist.
    """
    from tqdm import tqdm
    from adaptsr.utils.outputs import check_plan
    from adaptsr.utils.report import write_table
    try:
        from adaptsr.utils.benchmark import peak_rss_bytes, reset_peak_rss
        reset_peak_rss()
    except OSError:  # not Linux: no peak memory in the rows
        peak_rss_bytes = None
    files = list_inputs(args.inputs)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise InferError('--device cuda, but torch sees no CUDA device')
    if args.hr and not osp.isdir(args.hr):
        raise InferError(f'--hr {args.hr}: not a folder')
    if args.threads:
        torch.set_num_threads(args.threads)
    opt, build_model = load_model(args)
    check_plan(planned_outputs(args.output, files, map_names_of(opt, args.maps)), run_inputs(args, files),
               args.overwrite)
    model = build_model()
    scale = opt['scale']
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as err:
        raise InferError(f'-o {args.output}: the folder cannot be made ({err.strerror}: {err.filename})') from err
    rows, warm = [], False
    for path in tqdm(files, unit='image', disable=args.quiet, desc='adaptsr-infer'):
        if peak_rss_bytes:
            reset_peak_rss()
        try:
            row = _infer_one(model, args, path, scale, warm)
            warm = True
        except (InferError, ValueError, RuntimeError) as err:  # this image only (unreadable, too small, memory)
            why = str(err) if isinstance(err, InferError) else f'{path}: {type(err).__name__}: {err}'
            row = {'image': osp.basename(path), 'error': why.splitlines()[0]}
            if not args.quiet:
                tqdm.write(f'adaptsr-infer: {row["error"]} (skipped; the run goes on)')
        row['peak_rss_mib'] = peak_rss_bytes() / 2**20 if peak_rss_bytes else None
        rows.append(row)
    write_table(rows, osp.join(args.output, 'adaptsr_infer'))
    return rows, opt


def main(argv=None):
    args = parse_args(argv)
    from adaptsr.cli.errors import one_line_errors
    with one_line_errors('adaptsr-infer', InferError, OSError):
        rows, opt = run(args)
    from adaptsr.utils.report import format_table
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


if __name__ == '__main__':
    main()
