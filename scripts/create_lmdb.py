"""Pack an image folder into a BasicSR LMDB (``data.mdb``, ``lock.mdb``, ``meta_info.txt``).

    python scripts/create_lmdb.py --input datasets/DIV2K/HR_aug_sub128 --output datasets/DIV2K/HR_aug_sub128.lmdb
    python scripts/create_lmdb.py --input datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub \
        --output datasets/DIV2K/DIV2K_train_LR_bicubic_X4_sub.lmdb

Keys are the file stems (minus ``--strip_suffix``), so paired GT/LQ LMDBs must be built from folders with the same
stems. An existing output is never overwritten; a stem with a dot is rejected (BasicSR cannot read it back).
"""
import argparse
import os
import os.path as osp
import sys

os.environ.setdefault('TQDM_DISABLE', '1')
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.core.data_prep import create_lmdb  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='image folder')
    parser.add_argument('--output', required=True, help='<name>.lmdb')
    parser.add_argument('--strip_suffix', default=None, help='remove from keys, e.g. x4')
    parser.add_argument('--n_thread', type=int, default=2)
    args = parser.parse_args(argv)
    try:
        create_lmdb(args.input, args.output, args.strip_suffix, args.n_thread)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        sys.exit(f'create_lmdb: {err}')
    print(f'{args.output} written (meta_info.txt inside)')


if __name__ == '__main__':
    main()
