"""ECBSR in its re-parameterised ("ECBSRT") inference form, as released with ETDS.

Source: Zhang, Zeng, Zhang, "Edge-oriented Convolution Block for Real-time Super Resolution on Mobile Devices",
ACM MM 2021 (github.com/xindongzhang/ECBSR); the released files are the ETDS authors' retrained baselines
(github.com/ECNUSR/ETDS, Apache-2.0). Written from the papers.

The training form with re-parameterisable edge-oriented convolution blocks is BasicSR's own ``ECBSR`` (reused, not
re-registered); :func:`ecbsr_train_to_plain` collapses it into :class:`ECBSRPlain` exactly, by the blocks' own
``rep_params()``.
"""
import torch
from basicsr.archs.ecbsr_arch import ECBSR
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.core.arch_util import AnchorPlainNet
from adaptsr.core.cost import SizeLaw, count_flops, register_dense_cost
from adaptsr.core.errors import ConversionError
from adaptsr.core.reparam import to_float32


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
    module hooks do not see), from small probes by the count's law in the size (no forward at the image's size)."""
    plain = ecbsr_train_to_plain(net).to(lq.device)
    law = SizeLaw(lambda h, w: count_flops(plain, lq.new_zeros(1, lq.shape[1], h, w)))
    return law(lq.shape[-2], lq.shape[-1])[0] * lq.shape[0]


def ecbsr_train_to_plain(net):
    """BasicSR's training-form ``ECBSR`` -> ``ECBSRPlain`` (each ECB collapsed by its ``rep_params()``).

    Args:
        net (basicsr.archs.ecbsr_arch.ECBSR): PReLU activations (the ETDS baselines); eval or train mode.

    Returns:
        ECBSRPlain: equivalent network (float32).

    Raises:
        ConversionError: activations other than PReLU / linear last block.
    """
    blocks = list(net.backbone)
    if any(b.act_type != 'prelu' for b in blocks[:-1]) or blocks[-1].act_type != 'linear':
        raise ConversionError('only ECBSR with PReLU blocks and a linear last block converts to ECBSRPlain')
    plain = ECBSRPlain(num_in_ch=net.num_in_ch, upscale=net.scale,
                                            num_block=len(blocks) - 2, num_feat=blocks[0].out_channels)
    sd = {}
    with torch.no_grad():
        for i, block in enumerate(blocks):
            w, b = block.rep_params()
            sd[f'backbone.{i}.0.weight'], sd[f'backbone.{i}.0.bias'] = w, b
            if i < len(blocks) - 1:
                sd[f'backbone.{i}.1.weight'] = block.act.weight.detach().clone()
    plain.load_state_dict(to_float32(sd), strict=True)
    return plain
