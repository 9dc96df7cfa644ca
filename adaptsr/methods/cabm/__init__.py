"""CABM (Tian et al., CVPR 2023): content-aware bit mapping of a quantised SR network by an edge-to-bit table.

Importing the package registers its classes in BasicSR's registries and its checkpoint formats.
"""
from adaptsr.methods.cabm import cabm_arch, cabm_loss, cabm_model, formats  # noqa: F401  (registrations)
