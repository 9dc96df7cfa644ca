"""SMSR sparsity regulariser.

Source: L. Wang et al., CVPR 2021 (github.com/LongguangWang/SMSR):
``L = L1(sr, hr) + lambda(e) * mean(sparsity)``, ``lambda(e) = min((e - 1) / 50, 1) * lambda0``, lambda0 = 0.1 with
the L1 on the [0, 255] scale.
"""
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn


@LOSS_REGISTRY.register()
class SMSRSparsityLoss(nn.Module):
    """``loss_weight * ramp * mean(sparsity)``.

    ``sparsity`` is the training forward's kept-computation map (values in [0, 1]: 1 = computed everywhere);
    :class:`~adaptsr.methods.smsr.smsr_model.SMSRModel` passes ``ramp`` in [0, 1] from the iteration (linear warm-up).

    Args:
        loss_weight (float): lambda0 (0.1 against an L1 on the [0, 255] scale).
    """

    def __init__(self, loss_weight=0.1):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, sparsity, ramp=1.0):
        return self.loss_weight * float(ramp) * sparsity.mean()
