"""The repository's spelling of ``adaptsr-prepare demo``: ``python scripts/prepare_demo_data.py ARGS`` runs
``adaptsr-prepare demo ARGS`` (:mod:`adaptsr.cli.prepare`; ``--help`` lists the flags)."""
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.cli.prepare import main  # noqa: E402

if __name__ == '__main__':
    main(['demo'] + sys.argv[1:])
