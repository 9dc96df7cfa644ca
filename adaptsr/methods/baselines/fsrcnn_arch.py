"""FSRCNN in the ClassSR/PCSR variant (single-parameter PReLUs, no activation between the mapping convs).

Source: C. Dong, C. C. Loy, X. Tang, "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016;
variant of XPixelGroup/ClassSR used by PCSR (the PCSR paper, github.com/3587jjh/PCSR).
"""
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from adaptsr.core.arch_util import MeanShiftMixin


class FSRCNNNet(nn.Module):
    """FSRCNN body; ``no_upsampling=True`` returns the d-channel LR features (PCSR encoder).

    Args:
        d (int): feature channels (56 original, 48 PCSR encoder).
        s (int): shrunk channels (12).
        m (int): mapping 3x3 convs (4).
        upscale (int): scale of the transposed-conv tail.
        no_upsampling (bool): encoder mode.
    """

    def __init__(self, d=56, s=12, m=4, upscale=4, no_upsampling=False):
        super().__init__()
        self.out_channels = d
        self.no_upsampling = no_upsampling
        self.head_conv = nn.Sequential(nn.Conv2d(3, d, 5, 1, 2), nn.PReLU())
        body = [nn.Sequential(nn.Conv2d(d, s, 1, 1, 0), nn.PReLU())]
        body += [nn.Conv2d(s, s, 3, 1, 1) for _ in range(m)]
        body += [nn.PReLU(), nn.Sequential(nn.Conv2d(s, d, 1, 1, 0), nn.PReLU())]
        self.body_conv = nn.Sequential(*body)
        if not no_upsampling:
            self.tail_conv = nn.ConvTranspose2d(d, 3, 9, stride=upscale, padding=(9 - upscale + 1) // 2,
                                                output_padding=(9 - upscale) % 2)
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(mod.weight)
                mod.weight.data *= 0.1
                nn.init.zeros_(mod.bias)

    def forward(self, x):
        feat = self.body_conv(self.head_conv(x))
        if self.no_upsampling:
            return feat
        return self.tail_conv(feat)


@ARCH_REGISTRY.register()
class PCSRFSRCNN(MeanShiftMixin, FSRCNNNet):
    """Original FSRCNN x``upscale`` (ClassSR variant), PCSR's FSRCNN baseline; input/output in [0, 1].

    Args:
        d (int), s (int), m (int): FSRCNN sizes (56, 12, 4).
        upscale (int): scale factor.
        rgb_mean (sequence[float]): input mean (0 for FSRCNN in PCSR).

    Shapes:
        (N, 3, h, w) -> (N, 3, h * upscale, w * upscale).
    """

    def __init__(self, d=56, s=12, m=4, upscale=4, rgb_mean=(0.0, 0.0, 0.0)):
        super().__init__(d=d, s=s, m=m, upscale=upscale, no_upsampling=False)
        self.set_rgb_mean(rgb_mean)

    def forward(self, x):
        return super().forward(x - self.rgb_mean) + self.rgb_mean
