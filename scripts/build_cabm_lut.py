"""The repository's spelling of ``adaptsr-cabm-table`` (:mod:`adaptsr.methods.cabm.table_cli`): step 4 of CABM, the
edge-to-bit lookup table from a trained CADyQ network. ``python scripts/build_cabm_lut.py --help`` lists the flags."""
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.methods.cabm.table_cli import main  # noqa: E402

if __name__ == '__main__':
    main()
