"""ETDS (Chao et al., CVPR 2023): dual-stream training, then an equivalent transformation to a plain net.

Importing the package registers its classes in BasicSR's registries and its checkpoint formats.
"""
from adaptsr.methods.etds import etds_arch, etds_dataset, etds_loss, etds_model, formats  # noqa: F401  (registrations)
