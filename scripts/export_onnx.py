"""Run ``adaptsr-export`` (:mod:`adaptsr.cli.export`) from a checkout without installing; see ``--help``."""
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from adaptsr.cli.export import main  # noqa: E402

if __name__ == '__main__':
    main()
