"""Super-resolve your own images with any adaptsr model: ``adaptsr-infer`` (or ``python -m adaptsr.cli.infer``).

Examples::

    # a checkpoint alone: the arch, its sizes, the scale and the model are recognised from the weights
    adaptsr-infer photos/ -o out/ --model $ADAPTSR_WEIGHTS/PCSR/carn-pcsr-phase1/iter_last.pth --k 0 --maps
    adaptsr-infer 'photos/*.jpg' -o out/ --model experiments/ape_ecbsr_m6c40_x4_291/models/net_g_latest.pth \\
        --exit-threshold 0.9 --maps
    adaptsr-infer photo.png -o out/ --model experiments/cabm_ecbsr_m6c40_x4_291/models/net_g_latest.pth \\
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
from adaptsr.core.model_flags import add_model_flags
from adaptsr.utils.argtypes import CLIParser, int_at_least


def parse_args(argv=None):
    parser = CLIParser(prog='adaptsr-infer', description=__doc__)
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns (quoted)')
    parser.add_argument('-o', '--output', required=True, help='output folder (created)')
    add_model_flags(parser)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--threads', type=int_at_least(1), default=None, help='torch CPU threads')
    parser.add_argument('--maps', action='store_true', help="write the method's routing pictures next to each image")
    parser.add_argument('--hr', default=None, help='folder of ground-truth HR images (same stems): PSNR/SSIM')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs (refused otherwise)')
    parser.add_argument('--skip-existing', action='store_true',
                        help='continue an interrupted run: inputs whose SR image and row are in -o already are kept, '
                             'the others run (and the tables are rewritten with all rows)')
    parser.add_argument('--no-real-flops', dest='real_flops', action='store_false',
                        help='skip gflops_real (the multiply-adds that actually ran, x 2), which an adaptive model '
                             'counts in a second, untimed run of each image')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from adaptsr.cli import infer_run  # after parsing: --help imports no torch
    infer_run.finish(args)


def __getattr__(name):
    """The work's functions (``run``, ``read_image``, ``quantize``, ...) stay importable from here."""
    if name.startswith('__'):  # the import system's probes (``__path__``, ...) must not import the work
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    from adaptsr.cli import infer_run
    try:
        return getattr(infer_run, name)
    except AttributeError:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}') from None


if __name__ == '__main__':
    main()
