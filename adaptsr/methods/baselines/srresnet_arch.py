"""MSRResNet trunk used as PCSR's SRResNet encoder (the full baseline is BasicSR's own ``MSRResNet``).

Source: C. Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a GAN", CVPR 2017 (SRResNet), in the
MSRResNet form of BasicSR/ClassSR without BatchNorm; PCSR (github.com/3587jjh/PCSR) uses its trunk, no long skip.
"""
from basicsr.archs.arch_util import ResidualBlockNoBN, default_init_weights, make_layer
from torch import nn


class SRResNetEncoder(nn.Module):
    """``recon_trunk(lrelu(conv_first(x)))``: (N, 3, h, w) -> (N, num_feat, h, w).

    Args:
        num_feat (int): channels (58 for SRResNet-PCSR).
        num_block (int): residual blocks (16).
    """

    def __init__(self, num_feat=58, num_block=16):
        super().__init__()
        self.out_channels = num_feat
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.recon_trunk = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        default_init_weights([self.conv_first], 0.1)

    def forward(self, x):
        return self.recon_trunk(self.lrelu(self.conv_first(x)))
