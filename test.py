"""Test with BasicSR's pipeline and adaptsr's registrations: ``python test.py -opt options/test/X.yml``."""
import os.path as osp

import adaptsr  # noqa: F401  (shims + registration)
from adaptsr.compat import patch_pipelines

patch_pipelines()

from basicsr.test import test_pipeline  # noqa: E402

if __name__ == '__main__':
    test_pipeline(osp.abspath(osp.dirname(__file__)))
