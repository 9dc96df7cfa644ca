"""The repository's spelling of ``adaptsr-prepare pack``: ``python scripts/create_lmdb.py ARGS`` runs
``adaptsr-prepare pack ARGS`` (:mod:`adaptsr.cli.prepare`; ``--help`` lists the flags)."""
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.cli.prepare import main  # noqa: E402

if __name__ == '__main__':
    main(['pack'] + sys.argv[1:])
