"""Any folder of HR images -> training LMDBs: HR sub-images and their bicubic LR x2/x3/x4 (BasicSR layout).

    # the 291 set (T91 + BSD200) as the shipped *_291.yml options read it: ${ADAPTSR_DATA}/train291/*.lmdb
    python scripts/prepare_data.py --input ${ADAPTSR_DATA}/train291
    # your own photos, 192-pixel sub-images (e.g. for SMSR's 96-pixel LR patches at x2)
    python scripts/prepare_data.py --input my_hr_photos --output datasets/mine --crop_size 192 --step 96

Writes ``HR_sub{crop}.lmdb`` and ``LR_bicubic_X{s}_sub{crop}.lmdb`` (``meta_info.txt`` inside, same keys) into
``--output`` (default: the input folder). Images are read from every sub-folder (PNG, WebP, BMP, JPEG, TIFF) and all
are checked before anything is written; LR is BasicSR's MATLAB-compatible bicubic of the whole HR image (uint8);
sub-images follow BasicSR's crop/step/thresh rule. An existing LMDB is never overwritten, and an interrupted run
leaves no LMDB behind.
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.core.options import default_env, expand_env  # noqa: E402
from adaptsr.core.data_prep import prepare_hr_folder  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='folder of HR images (sub-folders included)')
    parser.add_argument('--output', default=None, help='folder for the LMDBs (default: --input)')
    parser.add_argument('--crop_size', type=int, default=144, help='HR sub-image size (a multiple of every scale)')
    parser.add_argument('--step', type=int, default=72, help='HR sub-image step')
    parser.add_argument('--thresh_size', type=int, default=36, help='border remainder that gets its own crop')
    parser.add_argument('--scales', default='2,3,4', help='LR scales, comma-separated')
    parser.add_argument('--augment_scales', default=None, help='HR resize factors, e.g. 1,0.9,0.8,0.7,0.6 (PCSR)')
    parser.add_argument('--compression_level', type=int, default=1, help='PNG compression inside the LMDB')
    args = parser.parse_args(argv)
    default_env(osp.abspath(osp.join(osp.dirname(__file__), '..')))
    try:
        inp = expand_env('--input', args.input)
        out = expand_env('--output', args.output) if args.output else inp
        start = time.time()
        stats = prepare_hr_folder(inp, out, args.crop_size, args.step, args.thresh_size,
                                  [int(s) for s in args.scales.split(',')],
                                  args.augment_scales.split(',') if args.augment_scales else None,
                                  args.compression_level)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        sys.exit(f'prepare_data: {err}')
    print(f"{stats['images']} images ({stats['skipped']} smaller than {args.crop_size} px, skipped) -> "
          f"{stats['sub_images']} sub-images per LMDB, {len(stats['outputs'])} LMDBs in {time.time() - start:.0f} s")


if __name__ == '__main__':
    os.environ.setdefault('TQDM_DISABLE', '1')
    main()
