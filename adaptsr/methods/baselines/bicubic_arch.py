"""MATLAB-compatible bicubic upsampling as a network: the reference every SR method must beat."""
import torch
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class BicubicSR(nn.Module):
    """Bicubic x``upscale`` (MATLAB ``imresize``: a = -0.5) of each image; no parameters, zero FLOPs counted.

    Args:
        upscale (int): scale factor.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale).
    """

    def __init__(self, upscale=4):
        super().__init__()
        self.upscale = upscale

    def forward(self, x):
        return torch.stack([imresize(img, self.upscale) for img in x])
