"""``adaptsr-prepare``: the data the options files read, from what the package ships or from your own images.

    adaptsr-prepare demo                                  # datasets/demo: the quick start's data (no download)
    adaptsr-prepare lmdb -i my_hr_photos -o datasets/mine # HR sub-images + bicubic LR x2/x3/x4 as training LMDBs
    adaptsr-prepare lmdb -i datasets/train291             # the 291 set as the *_291.yml options read it
    adaptsr-prepare subimages -i DIV2K_train_HR -o DIV2K_train_HR_sub --crop-size 480 --step 240
    adaptsr-prepare pack -i DIV2K_train_HR_sub -o DIV2K_train_HR_sub.lmdb

Existing outputs are never overwritten; every image is checked before anything is written, and an interrupted run
leaves no partial LMDB or folder (docs/data.md).
"""
import os
import sys
import time

from adaptsr.utils.argtypes import CLIParser, int_at_least

def build_parser():
    """The command line: one sub-command per job (``demo``, ``lmdb``, ``subimages``, ``pack``)."""
    parser = CLIParser(prog='adaptsr-prepare', description=__doc__)
    sub = parser.add_subparsers(dest='job', required=True, metavar='{demo,lmdb,subimages,pack}')

    demo = sub.add_parser('demo', help='the embedded demo set (scikit-image photographs) for the *_demo.yml options',
                          description='Build datasets/demo: 5 training photographs as 128-pixel sub-images (folders '
                          'and LMDBs) with bicubic LR x2/x3/x4, and 2 validation pairs per scale.')
    demo.add_argument('-o', '--output', '--root', default=os.path.join('datasets', 'demo'),
                      help='folder to build (default: datasets/demo, where the shipped *_demo.yml options read it)')
    demo.add_argument('--crop-size', type=int_at_least(8), default=128, help='HR sub-image size (pixels)')
    demo.add_argument('--step', type=int_at_least(1), default=64, help='HR sub-image stride (pixels)')

    lmdb = sub.add_parser('lmdb', help='any HR folder -> HR sub-image LMDB + paired bicubic LR LMDBs',
                          description='Writes HR_sub{crop}.lmdb and LR_bicubic_X{s}_sub{crop}.lmdb (same keys, '
                          'meta_info.txt inside). Images are read from every sub-folder; LR is the MATLAB-compatible '
                          'bicubic of the whole HR image (uint8).')
    lmdb.add_argument('-i', '--input', required=True, help='folder of HR images (sub-folders included)')
    lmdb.add_argument('-o', '--output', default=None, help='folder for the LMDBs (default: --input)')
    lmdb.add_argument('--crop-size', type=int_at_least(1), default=144,
                      help='HR sub-image size (a multiple of every scale)')
    lmdb.add_argument('--step', type=int_at_least(1), default=72, help='HR sub-image stride')
    lmdb.add_argument('--thresh-size', type=int_at_least(0), default=36, help='border remainder that gets its own crop')
    lmdb.add_argument('--scales', default='2,3,4', help='LR scales, comma-separated')
    lmdb.add_argument('--augment-scales', default=None,
                      help='HR resize factors of a multi-scale augmentation, e.g. 1,0.9,0.8,0.7,0.6')
    lmdb.add_argument('--compression-level', type=int, choices=range(10), default=1, metavar='0-9',
                      help='PNG compression inside the LMDB')

    subimages = sub.add_parser('subimages', help="crop a folder into sub-images (BasicSR's rule)",
                               description='Names: <stem>_s###.png; with --augment-scales the factor is prefixed '
                               '(s090_<stem>_s###.png).')
    subimages.add_argument('-i', '--input', required=True, help='image folder')
    subimages.add_argument('-o', '--output', required=True, help='folder to create (must not exist)')
    subimages.add_argument('--crop-size', type=int_at_least(1), default=480)
    subimages.add_argument('--step', type=int_at_least(1), default=240)
    subimages.add_argument('--thresh-size', type=int_at_least(0), default=0)
    subimages.add_argument('--compression-level', type=int, choices=range(10), default=3, metavar='0-9')
    subimages.add_argument('--strip-suffix', default=None, help='remove this from file stems (e.g. x4)')
    subimages.add_argument('--augment-scales', default=None,
                           help='HR resize factors of a multi-scale augmentation, comma-separated')
    subimages.add_argument('--n-thread', type=int_at_least(1), default=2, help='worker processes')

    pack = sub.add_parser('pack', help='an image folder -> one BasicSR LMDB (keys = file stems)')
    pack.add_argument('-i', '--input', required=True, help='image folder')
    pack.add_argument('-o', '--output', required=True, help='<name>.lmdb (must not exist)')
    pack.add_argument('--strip-suffix', default=None, help='remove from keys, e.g. x4')
    pack.add_argument('--n-thread', type=int_at_least(1), default=2)
    return parser


def _factors(flag, text):
    try:
        return [float(s) for s in text.split(',')] if text else None
    except ValueError:
        raise ValueError(f'{flag} {text!r}: expected comma-separated numbers') from None


def run(args):
    """Do the parsed job; returns the line to print."""
    # imported after the command line is parsed: they import torch and BasicSR (seconds), --help needs neither
    from adaptsr.core import data_prep
    from adaptsr.core.options import default_env, expand_env
    start = time.time()
    if args.job == 'demo':
        stats = data_prep.build_demo_data(args.output, args.crop_size, args.step)
        if stats is None:
            return f'Demo data already prepared in {os.path.abspath(args.output)} (delete the folder to rebuild).'
        return (f"Demo data ready in {os.path.abspath(args.output)}: {stats['train']} training photos -> "
                f"{stats['sub_images']} HR sub-images ({args.crop_size}px, step {args.step}), {stats['val']} "
                f'validation photos, LR x{data_prep.DEMO_SCALES}.')
    if args.job == 'lmdb':
        default_env(os.getcwd())
        inp = expand_env('--input', args.input)
        out = expand_env('--output', args.output) if args.output else inp
        scales = _factors('--scales', args.scales)
        if any(s != int(s) or s < 1 for s in scales):
            raise ValueError(f'--scales {args.scales!r}: expected integers >= 1')
        stats = data_prep.prepare_hr_folder(inp, out, args.crop_size, args.step, args.thresh_size,
                                            [int(s) for s in scales],
                                            _factors('--augment-scales', args.augment_scales),
                                            args.compression_level)
        return (f"{stats['images']} images ({stats['skipped']} smaller than {args.crop_size} px, skipped) -> "
                f"{stats['sub_images']} sub-images per LMDB, {len(stats['outputs'])} LMDBs in "
                f'{time.time() - start:.0f} s')
    if args.job == 'subimages':
        images, subs = data_prep.extract_subimage_folder(
            args.input, args.output, args.crop_size, args.step, args.thresh_size, args.compression_level,
            args.strip_suffix, _factors('--augment-scales', args.augment_scales), args.n_thread)
        return f'{images} images -> {subs} sub-images in {args.output}'
    data_prep.create_lmdb(args.input, args.output, args.strip_suffix, args.n_thread)
    return f'{args.output} written (meta_info.txt inside)'


def main(argv=None):
    """``adaptsr-prepare JOB ...``; a bad input ends it with one line (exit status 1) and nothing written."""
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as err:
        sys.exit(f'adaptsr-prepare {args.job}: {err}')


if __name__ == '__main__':
    main()
