"""Convert an official checkpoint to an adaptsr/BasicSR checkpoint ({'params', 'params_ema', 'meta'}).

Examples::

    adaptsr-convert --method pcsr --input $ADAPTSR_WEIGHTS/PCSR/carn-pcsr-phase1/iter_last.pth \\
        --output weights/pcsr_carn_x4_official.pth
    adaptsr-convert --method pcsr --input $ADAPTSR_WEIGHTS/PCSR/carn-x4/iter_last.pth \\
        --output weights/carn_x4_pcsr_official.pth
    # PCSR's phase-0 part (encoder + heavy upsampler) of any PCSR file, to train phase 1 again (train.start_phase)
    adaptsr-convert --method pcsr --keep encoder,heavy_sampler \\
        --input $ADAPTSR_WEIGHTS/PCSR/carn-pcsr-phase1/iter_last.pth --output weights/pcsr_carn_x4_phase0.pth
    adaptsr-convert --method carn_m --scale 4 --input $ADAPTSR_WEIGHTS/CARN/carn_m.pth \\
        --output weights/carn_m_x4.pth

    # ETDS (github.com/ECNUSR/ETDS): a released plain file is checked and wrapped; a training-form file (an official
    # ablation, or our own experiments/<name>/models/net_g_*.pth: params_ema is used when present) is converted to
    # the plain ETDSPlain by the equivalent transformation and verified
    adaptsr-convert --method etds --scale 4 \\
        --input $ADAPTSR_WEIGHTS/ETDS/ablations/ETDS_M6C32_x4_normal_loss.pth --output weights/etds_m6c32_x4_nl.pth
    # ECBSR: BasicSR's training-form ECBSR or a released ECBSRPlain file; --et goes on to the plain ETDSPlain form
    adaptsr-convert --method ecbsr --scale 4 --et \\
        --input $ADAPTSR_WEIGHTS/ECBSR/ECBSR_M4C16_x4.pth --output weights/ecbsr_m4c16_x4_et.pth
    adaptsr-convert --method abpn --scale 4 --input abpn.pth --output weights/abpn_x4_et.pth
    # SMSR (github.com/LongguangWang/SMSR, legacy pickle): x2 only is released
    adaptsr-convert --method smsr --scale 2 --input $ADAPTSR_WEIGHTS/SMSR/SMSR_x2_model_1000.pt \\
        --output weights/smsr_x2.pth

The converted file is loaded strictly into the target arch before it is written; conversions to a plain form
print the measured max |difference| x 255 on random inputs and fail above 0.01.
"""
import os
import os.path as osp
import sys

from adaptsr.core.model_flags import converter_help
from adaptsr.core.outputs import OutputPlanError, check_plan
from adaptsr.utils.argtypes import CLIParser, int_at_least


def main(argv=None):
    parser = CLIParser(prog='adaptsr-convert', description=__doc__)
    converters = converter_help()  # the rooms' declarations: --help imports no torch
    parser.add_argument('--method', required=True, choices=sorted(converters),
                        help='; '.join(f'{name}: {text}' for name, text in sorted(converters.items())))
    parser.add_argument('-i', '--input', required=True, help='official checkpoint')
    parser.add_argument('-o', '--output', required=True,
                        help='converted checkpoint: .pth (BasicSR) or .safetensors (one state_dict, meta in '
                             'the header)')
    parser.add_argument('--scale', type=int_at_least(1), default=4)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --output')
    parser.add_argument('--param-key', default='auto',
                        help="weights of a BasicSR checkpoint: params, params_ema, or auto (params_ema if present)")
    parser.add_argument('--et', action='store_true',
                        help='a converter to a re-parameterised form: go on to its equivalent plain form too')
    parser.add_argument('--keep', default=None,
                        help='keep only these modules (comma-separated prefixes), e.g. encoder,heavy_sampler: the part '
                             'of a file that an earlier phase trained, to train the rest again with train.start_phase')
    args = parser.parse_args(argv)
    try:  # fail before any work, never after it; the source is never replaced, even with --overwrite
        check_plan([(args.output, 'converted checkpoint')], [args.input], args.overwrite)
    except OutputPlanError as err:
        parser.error(str(err))
    from adaptsr.core.checkpoint_io import check_finite, load_checkpoint, save_checkpoint
    from adaptsr.core.checkpoints import CONVERTERS, ConversionError, build_target, keep_modules
    try:
        source = load_checkpoint(args.input)
        check_finite(source, args.input)  # a diverged training's file is refused, not converted
        convert, _ = CONVERTERS[args.method]
        ckpt = convert(source, scale=args.scale, source=args.input, param_key=args.param_key, et=args.et)
        net = build_target(ckpt)
        net.load_state_dict(ckpt['params'], strict=True)
        if args.keep:
            ckpt = keep_modules(ckpt, [p.strip() for p in args.keep.split(',') if p.strip()])
            dropped = sorted(set(net.state_dict()) - set(ckpt['params']))
            print(f'--keep {args.keep}: {len(ckpt["params"])} tensors kept, {len(dropped)} left out '
                  f'({sorted({k.split(".")[0] for k in dropped})})')
    except (ConversionError, KeyError, ValueError, FileNotFoundError) as err:
        sys.exit(f'adaptsr-convert: {err}')
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    save_checkpoint(ckpt, args.output, overwrite=args.overwrite)
    diff = ckpt['meta'].get('max_diff_255')
    print(f"{args.input} -> {args.output}: {ckpt['meta']['arch']} x{ckpt['meta']['scale']}, "
          f"{len(ckpt['params'])} tensors, {'partial' if args.keep else 'strict'} load OK" +
          (f"; equivalent to the source {ckpt['meta']['source_arch']}: max |difference| x 255 = {diff:.3g}"
           if diff else ''))


if __name__ == '__main__':
    main()
