"""The one import-time fix adaptsr needs before BasicSR is imported (see :mod:`adaptsr.compat` for its reason).

``import adaptsr`` imports this module first, so every ``adaptsr.*`` import (``import adaptsr.archs`` from a BasicSR
project included) installs it before ``basicsr``.
"""
import sys
import types


def install_import_shims():
    """Register ``torchvision.transforms.functional_tensor`` if this torchvision no longer has it."""
    if 'torchvision.transforms.functional_tensor' in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
        return
    except ImportError:
        pass
    try:
        from torchvision.transforms import functional as tv_functional
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError('adaptsr needs a torchvision build that matches the installed torch '
                          f'(importing torchvision failed: {err}). See README "Installation".') from err
    shim = types.ModuleType('torchvision.transforms.functional_tensor')
    shim.rgb_to_grayscale = tv_functional.rgb_to_grayscale
    sys.modules['torchvision.transforms.functional_tensor'] = shim


install_import_shims()
