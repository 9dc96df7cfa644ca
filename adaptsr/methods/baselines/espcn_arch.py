"""The small baselines released with ETDS (github.com/ECNUSR/ETDS, Apache-2.0; the ETDS paper's comparison table):
ESPCN and the ETDS repository's FSRCNN, in the layout of their released ``ESPCN_x{2,3,4}`` / ``FSRCNN_x{2,3,4}``
files. (Its "Plain" baseline is :class:`~adaptsr.methods.etds.etds_arch.ETDSAblationPlain`.)

Sources: W. Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network", CVPR 2016; C. Dong, C. C. Loy, X. Tang, "Accelerating the Super-Resolution
Convolutional Neural Network", ECCV 2016.
"""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F


def _rgb_only(name, num_in_ch):
    if num_in_ch != 3:
        raise ValueError(f'{name}: the released files are RGB (num_in_ch = 3), got {num_in_ch}')


@ARCH_REGISTRY.register()
class ESPCN(nn.Module):
    """ESPCN as released with ETDS: conv 5x5 (3 -> 64) + tanh, conv 3x3 (64 -> 32) + tanh, conv 3x3 (32 -> 3 s^2),
    PixelShuffle, sigmoid (the output is in (0, 1) by construction).

    Args:
        num_in_ch (int): 3. upscale (int): scale s. num_feat (int): 64. num_feat2 (int): 32.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s) in (0, 1).

    Raises:
        ValueError: non-RGB options.
    """

    def __init__(self, num_in_ch=3, upscale=4, num_feat=64, num_feat2=32):
        super().__init__()
        _rgb_only('ESPCN', num_in_ch)
        self.upscale = upscale
        self.conv1 = nn.Conv2d(num_in_ch, num_feat, 5, 1, 2)
        self.conv2 = nn.Conv2d(num_feat, num_feat2, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat2, num_in_ch * upscale * upscale, 3, 1, 1)

    def forward(self, x):
        y = self.conv3(torch.tanh(self.conv2(torch.tanh(self.conv1(x)))))
        return torch.sigmoid(F.pixel_shuffle(y, self.upscale))


@ARCH_REGISTRY.register()
class FSRCNN(nn.Module):
    """FSRCNN as released with ETDS: feature extraction conv 5x5 (3 -> d) + PReLU(d), shrinking 1x1 (d -> s) +
    PReLU(s), ``m`` mapping 3x3 convs (s -> s) + PReLU(s), expanding 1x1 (s -> d) + PReLU(d), and a 9x9 transposed
    convolution of stride ``upscale`` (d -> 3). Per-channel PReLUs; RGB in and out. (PCSR's FSRCNN variant is
    :class:`~adaptsr.methods.baselines.fsrcnn_arch.PCSRFSRCNN`.)

    Args:
        num_in_ch (int): 3. upscale (int): scale. d (int): 56. s (int): 12. m (int): 4.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale), not clamped.

    Raises:
        ValueError: non-RGB options.
    """

    def __init__(self, num_in_ch=3, upscale=4, d=56, s=12, m=4):
        super().__init__()
        _rgb_only('FSRCNN', num_in_ch)
        self.upscale = upscale
        self.first_part = nn.Sequential(nn.Conv2d(num_in_ch, d, 5, 1, 2), nn.PReLU(d))
        mid = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, 1, 1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(d, num_in_ch, 9, upscale, 4, output_padding=upscale - 1)

    def forward(self, x):
        return self.last_part(self.mid_part(self.first_part(x)))
