"""The released networks the methods compare with or build on: CARN and CARN-M, ECBSR, ABPN, ESPCN, FSRCNN,
SRResNet parts, the plain net and bicubic.

Importing the package registers its classes in BasicSR's registries and its checkpoint formats.
"""
from adaptsr.methods.baselines import (abpn_arch, bicubic_arch, carn_arch, ecbsr_arch, espcn_arch,  # noqa: F401
                                       formats, fsrcnn_arch, srresnet_arch)
