"""PCSR (Jeong et al., CVPR 2024): a pixel-level classifier sends each HR pixel to a light or a heavy upsampler.

Importing the package registers its classes in BasicSR's registries and its checkpoint formats.
"""
from adaptsr.methods.pcsr import formats, pcsr_arch, pcsr_dataset, pcsr_loss, pcsr_model  # noqa: F401  (registrations)
