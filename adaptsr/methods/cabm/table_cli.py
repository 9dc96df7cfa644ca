"""``adaptsr-cabm-table``: step 4 of CABM alone, the edge-to-bit lookup table from a trained CADyQ network (CABM
paper, Sec. 3.3; github.com/Sheldon04/CABM-pytorch).

    adaptsr-cabm-table -m experiments/<name>/models/net_g_cadyq.pth -i DIV2K_valid_LR_bicubic/X4 -o cabm_lut.json
    adaptsr-cabm-table -m net_g_cadyq.pth -i datasets/train291/LR_bicubic_X4_sub144.lmdb -o lut.json \\
        --opt cabm_ecbsr_m6c40_x4_291          # the YAML's network_g (e.g. a CABMNet around ECBSR)

Without ``--opt`` the network is ``CABMEDSR`` (``--scale``, ``--num-block``, ``--num-feat``); with it, the options
file's ``network_g`` (a path or a shipped name), built in ``cadyq`` mode. The same function runs as the ``build_lut``
hook at the end of the ``cadyq`` phase (``CABMModel``). An existing ``--output`` is never overwritten unless
``--overwrite``.
"""
import os.path as osp
import sys

from adaptsr.utils.argtypes import CLIParser, int_at_least

# the work's imports (torch, BasicSR) are made after the flags are parsed: ``--help`` imports neither
# (``adaptsr-cabm-table`` runs through :mod:`adaptsr.cli.room_command`, which loads this file alone for --help)


def build_parser():
    """The command line of ``adaptsr-cabm-table``."""
    parser = CLIParser(prog='adaptsr-cabm-table', description=__doc__)
    parser.add_argument('-m', '--model', required=True, help='CADyQ checkpoint (any phase layout)')
    parser.add_argument('-i', '--input', '--lr-root', dest='lr_root', required=True,
                        help='folder of LR images, or a BasicSR LMDB of them')
    parser.add_argument('-o', '--output', required=True, help='table JSON to write')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --output')
    parser.add_argument('--scale', type=int_at_least(1), default=4)
    parser.add_argument('--num-block', type=int_at_least(1), default=16)
    parser.add_argument('--num-feat', type=int_at_least(1), default=64)
    parser.add_argument('--tile', type=int_at_least(3), default=96, help='LR tile size (pixels)')
    parser.add_argument('--step', type=int_at_least(1), default=94, help='LR tile stride (pixels), at most --tile')
    parser.add_argument('--bug-compatible-edge-score', action='store_true',
                        help="the released code's score (clamped [0, 1] input); the table records the choice")
    parser.add_argument('--max-images', type=int_at_least(1), default=None)
    parser.add_argument('--min-tiles', type=int_at_least(1), default=100,
                        help='fewest tiles a table may be built from (refused with fewer)')
    parser.add_argument('--opt', default=None, help='options file (path or shipped train name) whose network_g is the '
                        'CADyQ network')
    return parser


def cadyq_network(args, parser):
    """The network to run: the options file's ``network_g`` or ``CABMEDSR``, in ``cadyq`` mode."""
    import yaml
    from basicsr.archs import build_network

    from adaptsr.core.options import find_options
    from adaptsr.methods.cabm.cabm_arch import CABMEDSR
    if not args.opt:
        return CABMEDSR(upscale=args.scale, num_block=args.num_block, num_feat=args.num_feat, mode='cadyq')
    try:
        path = find_options(args.opt, 'train')
    except FileNotFoundError as err:
        parser.error(f'--opt: {err}')
    with open(path) as f:
        network = (yaml.safe_load(f) or {}).get('network_g')
    if not isinstance(network, dict):
        parser.error(f'--opt {path}: no network_g mapping')
    return build_network(dict(network, mode='cadyq'))


def main(argv=None):
    """Build and write the table; a bad input ends with one line (exit status 1 or argparse's 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if osp.exists(args.output) and not args.overwrite:
        parser.error(f'--output {args.output} exists; choose another or pass --overwrite')
    if not args.step <= args.tile:
        parser.error(f'--step must be in (0, --tile], got {args.step}')
    from adaptsr.core.checkpoint_io import load_checkpoint
    from adaptsr.core.checkpoints import checkpoint_state_dict
    from adaptsr.methods.cabm.bitmap import build_table
    net = cadyq_network(args, parser)
    try:
        net.load_state_dict(checkpoint_state_dict(load_checkpoint(args.model), args.model), strict=True)
        table = build_table(net, args.lr_root, args.tile, args.step, args.bug_compatible_edge_score, args.max_images,
                            min_tiles=args.min_tiles)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        sys.exit(f'adaptsr-cabm-table: {err}'.splitlines()[0])
    table.save(args.output, overwrite=args.overwrite)
    print(f'{args.output}: {len(table)} bins, {table.meta["tiles"]} tiles from {table.meta["images"]} images, '
          f'mean FAB {table.mean_fab():.3f}')


if __name__ == '__main__':
    main()
