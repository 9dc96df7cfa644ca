"""CADyQ / CABM losses: attention-transfer distillation from the PAMS w8a8 teacher, output distillation and the bit
cost.

Source: C. Hong et al., CADyQ, ECCV 2022 (github.com/Cheeun/CADyQ); S. Tian et al., CABM, CVPR 2023
(github.com/Sheldon04/CABM-pytorch). Weights are relative to an L1 on the [0, 255] scale.
"""
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F


def attention_map(feat):
    """``L2-normalise(mean_c f^2)`` per sample: (N, C, H, W) -> (N, H W)."""
    return F.normalize(feat.pow(2).mean(1).flatten(1), dim=1)


def attention_distance(student, teacher):
    """``mean((at(s) - at(t))^2)``, the teacher detached."""
    return (attention_map(student) - attention_map(teacher.detach())).pow(2).mean()


@LOSS_REGISTRY.register()
class CABMDistillLoss(nn.Module):
    """``w_at * d(res_s, res_t) + 0.1 * w_at * sum_b d(feat_s_b, feat_t_b)`` (attention transfer on the body output
    after the global skip and on every block's second-conv output).

    Args:
        loss_weight (float): w_at (1e3).

    Forward args: ``res_s``, ``res_t`` (N, C, H, W); ``feats_s``, ``feats_t`` (lists of (N, C, H, W)).
    """

    def __init__(self, loss_weight=1e3):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, res_s, res_t, feats_s, feats_t):
        if len(feats_s) != len(feats_t):
            raise ValueError(f'CABMDistillLoss: {len(feats_s)} student vs {len(feats_t)} teacher block features')
        blocks = sum(attention_distance(s, t) for s, t in zip(feats_s, feats_t))
        return self.loss_weight * (attention_distance(res_s, res_t) + 0.1 * blocks)


@LOSS_REGISTRY.register()
class CABMOutputDistillLoss(nn.Module):
    """``loss_weight * mean|SR_s - SR_t|``: L1 between the student's and the frozen teacher's SR images.

    Not in the official recipe (its PAMS step trains on L1 to HR only). On a released full-precision backbone
    fine-tuned on little data, distilling from that backbone keeps the quantised network close to the function it
    was trained to on its own data, instead of fitting the few training images (an adaptsr option: a KD in the
    PAMS step; README, CABM, gives the measurements).

    Args:
        loss_weight (float): 255 makes it an L1 on the [0, 255] scale, as the recipe's other losses.

    Forward args: ``sr_s``, ``sr_t`` (N, 3, H, W) in [0, 1]; the teacher's output is detached.
    """

    def __init__(self, loss_weight=255.0):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, sr_s, sr_t):
        return self.loss_weight * (sr_s - sr_t.detach()).abs().mean()


@LOSS_REGISTRY.register()
class CABMBitLoss(nn.Module):
    """CADyQ's bit cost ``(w_bit + epoch * w_bit_decay) * sum_batch weighted_bits``; its gradient is
    ``grad log E_p[bits]`` summed over the selectors.

    Args:
        loss_weight (float): w_bit (1e-4). decay (float): w_bit_decay per epoch (1e-6).

    Forward args: ``weighted_bits`` (N,), ``epoch`` (int, 1-based, 1000 iterations per epoch in the recipe).
    """

    def __init__(self, loss_weight=1e-4, decay=1e-6):
        super().__init__()
        self.loss_weight, self.decay = float(loss_weight), float(decay)

    def forward(self, weighted_bits, epoch):
        return (self.loss_weight + int(epoch) * self.decay) * weighted_bits.sum()
