"""Step 4 of CABM alone: build the edge-to-bit lookup table from a trained CADyQ network.

    python scripts/build_cabm_lut.py --model experiments/<name>/models/net_g_cadyq.pth \\
        --lr_root datasets/DIV2K/DIV2K_valid_LR_bicubic/X4 --output cabm_lut.json [--tile 96 --step 94]
        [--bug_compatible_edge_score] [--scale 4] [--max_images N] [--opt options/train/<name>.yml]

Without ``--opt`` the network is ``CABMEDSR`` (``--scale``, ``--num_block``, ``--num_feat``); with it, the YAML's
``network_g`` (e.g. a ``CABMNet`` around ECBSR or SRResNet), built in ``cadyq`` mode.

The same function runs as the ``build_lut`` hook at the end of the ``cadyq`` phase (``CABMModel``). An existing
``--output`` is never overwritten.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

import adaptsr  # noqa: E402,F401
from adaptsr.methods.cabm.cabm_arch import CABMEDSR  # noqa: E402
from adaptsr.core.checkpoint_io import load_checkpoint  # noqa: E402
from adaptsr.core.checkpoints import checkpoint_state_dict  # noqa: E402
from adaptsr.methods.cabm.bitmap import build_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, help='CADyQ checkpoint (CABMEDSR state, any phase layout)')
    parser.add_argument('--lr_root', required=True, help='folder of LR images')
    parser.add_argument('--output', required=True, help='table JSON to write (must not exist)')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--num_block', type=int, default=16)
    parser.add_argument('--num_feat', type=int, default=64)
    parser.add_argument('--tile', type=int, default=96)
    parser.add_argument('--step', type=int, default=94)
    parser.add_argument('--bug_compatible_edge_score', action='store_true',
                        help="the released code's score (clamped [0, 1] input); the table records the choice")
    parser.add_argument('--max_images', type=int, default=None)
    parser.add_argument('--min_tiles', type=int, default=100,
                        help='fewest tiles a table may be built from (refused with fewer)')
    parser.add_argument('--opt', default=None, help='options YAML whose network_g is the CADyQ network')
    args = parser.parse_args(argv)
    if osp.exists(args.output):
        parser.error(f'{args.output} exists; choose another --output')
    if not 0 < args.step <= args.tile:
        parser.error(f'--step must be in (0, --tile], got {args.step}')
    if args.opt:
        import yaml
        from basicsr.archs import build_network
        with open(args.opt) as f:
            network = (yaml.safe_load(f) or {}).get('network_g')
        if not isinstance(network, dict):
            parser.error(f'{args.opt} has no network_g')
        net = build_network(dict(network, mode='cadyq'))
    else:
        net = CABMEDSR(upscale=args.scale, num_block=args.num_block, num_feat=args.num_feat, mode='cadyq')
    net.load_state_dict(checkpoint_state_dict(load_checkpoint(args.model), args.model), strict=True)
    try:
        table = build_table(net, args.lr_root, args.tile, args.step, args.bug_compatible_edge_score, args.max_images,
                            min_tiles=args.min_tiles)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'build_cabm_lut: {err}')
    table.save(args.output)
    print(f'{args.output}: {len(table)} bins, {table.meta["tiles"]} tiles from {table.meta["images"]} images, '
          f'mean FAB {table.mean_fab():.3f}')


if __name__ == '__main__':
    main()
