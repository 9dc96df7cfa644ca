"""adaptsr: adaptive and efficient single-image super-resolution methods as BasicSR plugins.

Importing the package installs the torchvision shim BasicSR 1.4.2 needs (:mod:`adaptsr.shims`) and registers every
method's archs, models, losses and datasets in BasicSR's registries (:mod:`adaptsr.methods`).
``adaptsr.load(source, scale=None, device='cpu', **knobs)`` loads any model for inference (:mod:`adaptsr.api`).
"""
from adaptsr import shims  # noqa: F401,I001  (must come before basicsr is imported)
from adaptsr import methods  # noqa: F401,E402  (registrations)
from adaptsr.api import load  # noqa: F401,E402  (the Python API: adaptsr.load(source, **knobs) -> runner)

__version__ = '0.1.0'
