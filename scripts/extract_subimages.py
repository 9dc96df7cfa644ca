"""The repository's spelling of ``adaptsr-prepare subimages``: ``python scripts/extract_subimages.py ARGS`` runs
``adaptsr-prepare subimages ARGS`` (:mod:`adaptsr.cli.prepare`; ``--help`` lists the flags)."""
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.cli.prepare import main  # noqa: E402

if __name__ == '__main__':
    main(['subimages'] + sys.argv[1:])
