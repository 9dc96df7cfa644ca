"""ETDS dual-stream loss term: L1 on the residual (low-frequency) stream.

Source: Chao et al., CVPR 2023, Eq. 15: ``L_DS = L1(HF + LF, GT) + alpha * L1(LF, GT)``, alpha = 0.5
(``interpolation_loss_weight`` in github.com/ECNUSR/ETDS).
"""
from basicsr.losses.basic_loss import L1Loss
from basicsr.utils.registry import LOSS_REGISTRY


@LOSS_REGISTRY.register()
class ETDSResidualL1Loss(L1Loss):
    """``loss_weight * L1(LF, GT)``: the alpha-weighted second term of Eq. 15.

    :class:`~adaptsr.methods.etds.etds_model.ETDSModel` feeds it the residual-stream output ``LF`` (N, 3, H, W)
    instead of the network output; the first term is an ordinary ``L1Loss`` on ``HF + LF``. Set ``loss_weight`` to
    alpha (0.5; 0 gives the paper's "normal loss" ablation).

    Args:
        loss_weight (float): alpha. reduction (str): 'mean' | 'sum' | 'none'.
    """
