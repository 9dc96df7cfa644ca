"""ABPN: anchor-based plain net for mobile SR, as released with ETDS.

Source: Du, Liu, Kang, Lin, Shi, Jiang, Yu, Zhang, "Anchor-based Plain Net for Mobile Image Super-Resolution",
CVPR 2021 workshops (Mobile AI challenge); the ETDS paper's baseline, whose repository (github.com/ECNUSR/ETDS,
Apache-2.0) releases ``ABPN_M4C28_x{2,3,4}`` and their ET forms ``ABPN_ET_M4C28_x{2,3,4}``.
"""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F


@ARCH_REGISTRY.register()
class ABPNNet(nn.Module):
    """ABPN: conv(3 -> C) + ReLU, ``num_block`` middle conv(C -> C) + ReLU, conv(C -> 3 s^2) + ReLU, conv(3 s^2 ->
    3 s^2); the anchor (the input repeated s^2 times) is added before PixelShuffle and the output clipped to [0, 1]
    at inference. Converts exactly to :class:`~adaptsr.methods.etds.etds_arch.ETDSPlain` (with ``tail_feat``).

    State_dict names are the released files': ``backbone.0`` (first conv), ``backbone.{2..M+1}.0`` (middle convs),
    ``backbone.{M+2}`` (conv to 3 s^2), ``backbone.{M+4}`` (output conv); odd indices are the ReLUs.

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): scale s (2, 3, 4).
        num_block (int): M, middle convs (4 in the released M4C28 files, 6 in M6C40). num_feat (int): C (28).

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale); in [0, 1] in eval mode.

    Raises:
        ValueError: non-RGB options or input.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=4, num_feat=28):
        super().__init__()
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'ABPNNet is RGB only (num_in_ch = num_out_ch = 3), got {num_in_ch}/{num_out_ch}')
        self.upscale, self.num_block, self.num_feat = upscale, num_block, num_feat
        k = num_out_ch * upscale * upscale
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.ReLU()]
        layers += [nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU()) for _ in range(num_block)]
        layers += [nn.Conv2d(num_feat, k, 3, 1, 1), nn.ReLU(), nn.Conv2d(k, k, 3, 1, 1)]
        self.backbone = nn.Sequential(*layers)

    def convs(self):
        """The convolutions in order: first, the middle ones, the conv to 3 s^2, the output conv."""
        return [m for m in self.backbone.modules() if isinstance(m, nn.Conv2d)]

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'ABPNNet expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')
        out = self.backbone(x) + torch.repeat_interleave(x, self.upscale * self.upscale, dim=1)
        out = F.pixel_shuffle(out, self.upscale)
        return out if self.training else out.clamp(0, 1)
