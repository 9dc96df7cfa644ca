"""One package per method; importing this package registers every method's archs, models, losses, datasets and
checkpoint formats in BasicSR's and adaptsr's registries.

Each method keeps its whole knowledge in its own folder (BasicSR file names: ``<m>_arch.py``, ``<m>_model.py``,
``<m>_loss.py``, ``<m>_dataset.py``; ``formats.py`` recognises and converts its checkpoints). The packages import
:mod:`adaptsr.core` and, where a method is built on a released network, :mod:`adaptsr.methods.baselines`; never each
other.

A method kept outside adaptsr registers the same way from its own package, loaded here after the five: an installed
package names it in an ``adaptsr.methods`` entry point, or ``ADAPTSR_METHODS`` lists importable modules
(comma-separated), e.g. ``ADAPTSR_METHODS=my_method``.
"""
import importlib
import os
from importlib.metadata import entry_points

from adaptsr.methods import baselines  # noqa: F401  (first: the formats of the others are ordered after its own)
from adaptsr.methods import ape, cabm, etds, pcsr, smsr  # noqa: F401


def _load_plugins():
    """Import the methods named by ``adaptsr.methods`` entry points and ``ADAPTSR_METHODS``.

    Raises:
        ImportError: a named module that cannot be imported (named, with the variable or entry point).
    """
    for ep in entry_points(group='adaptsr.methods'):
        ep.load()
    for name in filter(None, (n.strip() for n in os.environ.get('ADAPTSR_METHODS', '').split(','))):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ImportError(f'ADAPTSR_METHODS names {name!r}, which cannot be imported: {err}') from err


_load_plugins()
