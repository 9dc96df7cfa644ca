"""PCSR phase-1 average-cost loss.

Source: Jeong et al., "Accelerating Image Super-Resolution Networks with Pixel-Level Classification", ECCV 2024
(github.com/3587jjh/PCSR).
"""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn


@LOSS_REGISTRY.register()
class PCSRAverageCostLoss(nn.Module):
    """``loss_weight * |sum(p1) - N/2| / (N/2) = loss_weight * 2 * |mean(p1) - 0.5|``.

    Pushes the average probability of the heavy class towards one half, so that the classifier does not collapse to
    all-heavy (the L1 term alone prefers the heavy upsampler everywhere).

    Args:
        loss_weight (float): weight (3 in the paper).
        target (float): target mean heavy probability (0.5 in the paper).

    Shapes:
        p_heavy: any shape, values in [0, 1] (N pixels in total). Returns a scalar.
    """

    def __init__(self, loss_weight=3.0, target=0.5):
        super().__init__()
        if not 0.0 < target < 1.0:
            raise ValueError(f'PCSRAverageCostLoss: target must be in (0, 1), got {target}')
        self.loss_weight = loss_weight
        self.target = target

    def forward(self, p_heavy):
        return self.loss_weight * torch.abs(p_heavy.mean() - self.target) / self.target
