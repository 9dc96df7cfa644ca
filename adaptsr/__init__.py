"""adaptsr: adaptive and efficient single-image super-resolution methods as BasicSR plugins.

Importing the package installs the torchvision shim BasicSR 1.4.2 needs (:mod:`adaptsr.shims`) and registers every
method's archs, models, losses and datasets in BasicSR's registries (:mod:`adaptsr.methods`).
``adaptsr.load(source, scale=None, device='cpu', **knobs)`` loads any model for inference (:mod:`adaptsr.api`).

One exception: a console command of :data:`LIGHT_HELP` run with ``-h``/``--help`` prints its help without importing
torch (a second instead of 4-6 s); nothing is registered in that process, and ``adaptsr.load`` imports on first use.
"""
import os
import os.path as osp
import sys

__version__ = '0.1.0'

#: the console commands whose help needs no registry (their flags are their own, or the methods' declarations files,
#: :mod:`adaptsr.core.model_flags`); with a method kept outside adaptsr, everything is imported as usual
LIGHT_HELP = ('adaptsr-train', 'adaptsr-test', 'adaptsr-weights', 'adaptsr-prepare', 'adaptsr-export', 'adaptsr-infer',
              'adaptsr-bench', 'adaptsr-convert')


def _help_only():
    argv = getattr(sys, 'argv', None) or ['']
    if not any(a in ('-h', '--help') for a in argv[1:]):
        return False
    if osp.basename(argv[0]) not in LIGHT_HELP:
        from adaptsr.core.model_flags import room_commands  # a method's own command (its declarations.COMMANDS)
        if osp.basename(argv[0]) not in room_commands():
            return False
    if os.environ.get('ADAPTSR_METHODS', '').strip():  # a method outside adaptsr declares its flags on registering
        return False
    from importlib.metadata import entry_points
    return not list(entry_points(group='adaptsr.methods'))


from adaptsr import shims  # noqa: F401,E402,I001  (before basicsr is imported; costs no import)

if not _help_only():
    from adaptsr import methods  # noqa: F401,E402  (registrations)
    from adaptsr.api import load  # noqa: F401,E402  (the Python API: adaptsr.load(source, **knobs) -> runner)


def __getattr__(name):
    if name == 'load':  # a help-only process that goes on to use the API after all
        from adaptsr import methods  # noqa: F401,F811  (registrations, as on a plain import)
        from adaptsr.api import load as api_load
        return api_load
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
