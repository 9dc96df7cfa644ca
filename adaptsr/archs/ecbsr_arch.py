"""ECBSR in its re-parameterised ("ECBSRT") inference form, as released with ETDS.

Source: Zhang, Zeng, Zhang, "Edge-oriented Convolution Block for Real-time Super Resolution on Mobile Devices",
ACM MM 2021 (github.com/xindongzhang/ECBSR); the released files are the ETDS authors' retrained baselines
(github.com/ECNUSR/ETDS, Apache-2.0). Written from the papers.

The training form with re-parameterisable edge-oriented convolution blocks is BasicSR's own ``ECBSR`` (reused, not
re-registered); :func:`adaptsr.convert.etds.convert_ecbsr_train` collapses it into :class:`ECBSRPlain` exactly.
"""
from basicsr.archs.ecbsr_arch import ECBSR
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.archs.arch_util import AnchorPlainNet
from adaptsr.ops.cost import count_flops, register_dense_cost


@ARCH_REGISTRY.register()
class ECBSRPlain(AnchorPlainNet):
    """ECBSR after re-parameterisation: M + 2 convs, PReLU after all but the last, plus the ``repeat_interleave``
    shortcut and PixelShuffle; no clamp (as the released model).

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): 2, 3 or 4.
        num_block (int): M ("M4C16" -> 4). num_feat (int): C.
        act_type (str): ``'prelu'`` (released files) or ``'relu'``.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale).
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=4, num_feat=16, act_type='prelu'):
        super().__init__(num_in_ch, num_out_ch, upscale, num_block, num_feat, act_type, clamp=False)


@register_dense_cost(ECBSR)
def ecbsr_deployed_flops(net, lq):
    """FLOPs of BasicSR's training-form ``ECBSR`` on ``lq``: those of its equivalent :class:`ECBSRPlain`, the model as
    deployed (its eval forward re-parameterises the blocks on every call through functional convolutions, which
    module hooks do not see)."""
    from adaptsr.convert.etds import ecbsr_train_to_plain
    return count_flops(ecbsr_train_to_plain(net).to(lq.device), lq)
