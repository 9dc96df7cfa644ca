"""APE (Wang et al., 2023): adaptive patch exiting from a deep backbone, with an incremental-capacity regressor.

Importing the package registers its classes in BasicSR's registries and its checkpoint formats.
"""
from adaptsr.methods.ape import ape_arch, ape_loss, ape_model, formats  # noqa: F401  (registrations)
