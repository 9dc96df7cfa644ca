"""Importing this package registers every ``*_loss.py`` module's classes in BasicSR's registries."""
from adaptsr import compat  # noqa: F401,I001  (torchvision shim before basicsr)

import importlib
from os import path as osp

from basicsr.utils import scandir

_folder = osp.dirname(osp.abspath(__file__))
losses_modules = [
    importlib.import_module(f'adaptsr.losses.{osp.splitext(name)[0]}')
    for name in sorted(scandir(_folder)) if name.endswith('_loss.py')
]
