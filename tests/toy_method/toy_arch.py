"""The toy method's network: ``bicubic(x) + strength * PixelShuffle(conv(relu(conv(x))))``."""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F


@ARCH_REGISTRY.register()
class ToyResidualSR(nn.Module):
    """Bicubic upsampling plus a residual from two 3x3 convolutions and PixelShuffle, weighted by ``strength``.

    Args:
        upscale (int): scale s. num_feat (int): width of the hidden conv.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s), not clamped.
    """

    def __init__(self, upscale=2, num_feat=8):
        super().__init__()
        self.upscale = upscale
        self.toy_body = nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1), nn.ReLU(inplace=True),
                                      nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))

    def residual(self, x):
        return F.pixel_shuffle(self.toy_body(x), self.upscale)

    def forward(self, x, strength=1.0):
        base = F.interpolate(x, scale_factor=self.upscale, mode='bicubic', align_corners=False)
        return base if strength == 0 else base + strength * self.residual(x)

    def infer(self, lq, strength=1.0):
        """The test forward and its cost: the residual's convolutions are skipped at ``strength`` 0.

        Returns:
            tuple[Tensor, dict]: SR and ``{'flops', 'flops_full', 'residual_px'}`` (FLOPs = 2 x multiply-adds of
            the convolutions; bicubic is not counted).
        """
        n, _, h, w = lq.shape
        full = 2 * n * h * w * sum(m.weight.numel() for m in self.toy_body if isinstance(m, nn.Conv2d))
        out = self.forward(lq, strength)
        used = strength != 0
        return out, {'flops': full if used else 0, 'flops_full': full, 'residual_px': n * h * w if used else 0,
                     'pixels': n * h * w}

    @torch.no_grad()
    def residual_norm(self, x):
        return float(self.residual(x).abs().mean())
