"""Architectures; importing this package registers every ``*_arch.py`` module's classes in BasicSR's ARCH_REGISTRY."""
from adaptsr import compat  # noqa: F401,I001  (torchvision shim before basicsr)

import importlib
from os import path as osp

from basicsr.utils import scandir

_folder = osp.dirname(osp.abspath(__file__))
arch_modules = [
    importlib.import_module(f'adaptsr.archs.{osp.splitext(name)[0]}')
    for name in sorted(scandir(_folder)) if name.endswith('_arch.py')
]
