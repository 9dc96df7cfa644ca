"""Convert an official checkpoint to an adaptsr/BasicSR checkpoint ({'params', 'params_ema', 'meta'}).

Examples::

    python scripts/convert_official.py --method pcsr --input $ADAPTSR_WEIGHTS/PCSR/carn-pcsr-phase1/iter_last.pth \
        --output weights/pcsr_carn_x4_official.pth
    python scripts/convert_official.py --method pcsr --input $ADAPTSR_WEIGHTS/PCSR/carn-x4/iter_last.pth \
        --output weights/carn_x4_pcsr_official.pth
    python scripts/convert_official.py --method carn_m --scale 4 --input $ADAPTSR_WEIGHTS/CARN/carn_m.pth \
        --output weights/carn_m_x4.pth

The converted file is loaded strictly into the target arch before it is written.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.convert import load_checkpoint, save_checkpoint  # noqa: E402
from adaptsr.convert.registry import CONVERTERS, build_target  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--method', required=True, choices=sorted(CONVERTERS))
    parser.add_argument('--input', required=True, help='official checkpoint')
    parser.add_argument('--output', required=True, help='converted BasicSR checkpoint (.pth)')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --output')
    args = parser.parse_args(argv)
    ckpt = CONVERTERS[args.method](load_checkpoint(args.input), scale=args.scale, source=args.input)
    net = build_target(ckpt)
    net.load_state_dict(ckpt['params'], strict=True)
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    save_checkpoint(ckpt, args.output, overwrite=args.overwrite)
    print(f"{args.input} -> {args.output}: {ckpt['meta']['arch']} x{ckpt['meta']['scale']}, "
          f"{len(ckpt['params'])} tensors, strict load OK")


if __name__ == '__main__':
    main()
