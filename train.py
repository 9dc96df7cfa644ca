"""Train with BasicSR's pipeline and adaptsr's registrations: ``python train.py -opt options/train/X.yml``
(the same as the installed ``adaptsr-train``, with ``experiments/`` beside this file)."""
import os.path as osp

from adaptsr.cli.train import main

if __name__ == '__main__':
    main(osp.abspath(osp.dirname(__file__)))
