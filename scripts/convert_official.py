"""Run ``adaptsr-convert`` (:mod:`adaptsr.cli.convert`) from a checkout without installing; see ``--help``."""
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from adaptsr.cli.convert import main  # noqa: E402

if __name__ == '__main__':
    main()
