"""The one import-time fix adaptsr needs before BasicSR is imported (see :mod:`adaptsr.compat` for its reason).

``import adaptsr`` imports this module first, so every ``adaptsr.*`` import (``import adaptsr.archs`` from a BasicSR
project included) installs it before ``basicsr``. It costs no import: a finder at the end of ``sys.meta_path`` makes
``torchvision.transforms.functional_tensor`` only when the import system finds no such module (torchvision >= 0.17).
"""
import importlib.abc
import importlib.util
import sys

SHIMMED = 'torchvision.transforms.functional_tensor'


class _FunctionalTensorShim(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds :data:`SHIMMED` when torchvision no longer has it: a module that re-exports ``rgb_to_grayscale`` (what
    ``basicsr.data.degradations`` imports from it)."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname == SHIMMED else None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        try:
            from torchvision.transforms import functional as tv_functional
        except ImportError as err:  # pragma: no cover - depends on the install
            raise ImportError('adaptsr needs a torchvision build that matches the installed torch '
                              f'(importing torchvision failed: {err}). See README "Installation".') from err
        module.rgb_to_grayscale = tv_functional.rgb_to_grayscale


def install_import_shims():
    """Put the finder of :data:`SHIMMED` at the end of ``sys.meta_path`` (once): torchvision's own module, where it
    exists, is found first."""
    if not any(isinstance(f, _FunctionalTensorShim) for f in sys.meta_path):
        sys.meta_path.append(_FunctionalTensorShim())


install_import_shims()
