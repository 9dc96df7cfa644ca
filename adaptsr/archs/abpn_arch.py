"""ABPN: anchor-based plain net for mobile SR.

Source: Du, Liu, Kang, Lin, Shi, Jiang, Yu, Zhang, "Anchor-based Plain Net for Mobile Image Super-Resolution",
CVPR 2021 workshops (Mobile AI challenge); ETDS's Table 1 baseline (github.com/ECNUSR/ETDS).
"""
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.archs.arch_util import AnchorPlainNet


@ARCH_REGISTRY.register()
class ABPNNet(AnchorPlainNet):
    """ABPN: ``num_block + 2`` 3x3 convs with ReLU (28 channels, 7 convs in the paper), the anchor (input repeated
    s^2 times) added before PixelShuffle, output clipped to [0, 1] at inference. Converts exactly to ``ETDSPlain``.

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): 2, 3 or 4.
        num_block (int): middle convs (5). num_feat (int): channels (28).

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale); in [0, 1] in eval mode.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=5, num_feat=28):
        super().__init__(num_in_ch, num_out_ch, upscale, num_block, num_feat, 'relu', clamp=True)
