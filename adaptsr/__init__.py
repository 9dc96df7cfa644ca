"""adaptsr: adaptive and efficient single-image super-resolution methods as BasicSR plugins.

Importing the package installs the compatibility shims (:mod:`adaptsr.compat`) and registers every arch, model,
loss and dataset in BasicSR's registries. ``adaptsr.load(source, scale=None, device='cpu', **knobs)`` loads any
model for inference (:mod:`adaptsr.api`).
"""
from adaptsr import compat  # noqa: F401  (must come before basicsr is imported)
from adaptsr import archs, data, losses, models  # noqa: F401,E402
from adaptsr.api import load  # noqa: F401,E402  (the Python API: adaptsr.load(source, **knobs) -> runner)

__version__ = '0.1.0'
