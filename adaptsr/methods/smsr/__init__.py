"""SMSR (Wang et al., CVPR 2021): learned spatial and channel masks, run by a sparse convolution kernel.

Importing the package registers its classes in BasicSR's registries and its checkpoint formats.
"""
from adaptsr.methods.smsr import formats, smsr_arch, smsr_loss, smsr_model  # noqa: F401  (registrations)
