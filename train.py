"""Train with BasicSR's pipeline and adaptsr's registrations: ``python train.py -opt options/train/X.yml``."""
import os.path as osp

import adaptsr  # noqa: F401  (shims + registration)
from adaptsr.compat import patch_pipelines

patch_pipelines()

from basicsr.train import train_pipeline  # noqa: E402

if __name__ == '__main__':
    train_pipeline(osp.abspath(osp.dirname(__file__)))
