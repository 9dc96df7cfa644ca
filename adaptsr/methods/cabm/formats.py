"""CABM's checkpoint format (a backbone whose quantised convs carry bit selectors, ``<conv>.bitsel.*``; PAMS and
CADyQ files have the same layout) and its export: the full-precision backbone, with the learned 8-bit clips for an
INT8 ONNX model (PAMS: Li et al., ECCV 2020, Sec. 3.2)."""
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.core.checkpoints import detect_arch, register_format
from adaptsr.methods.cabm.cabm_arch import CABMNet


def is_cabm_state_dict(sd):
    """True for a state_dict with bit selectors (``<conv>.bitsel.*``)."""
    return any('.bitsel.' in k for k in sd)


def cabm_net_kwargs(sd, scale=None, source='?'):
    """CABMNet kwargs read off a state_dict: the backbone (the registered format of the keys without ``*.bitsel.*``),
    the quantised convs (those with a ``bitsel``) and ``mode='cadyq'`` (the trained selector MLPs; a caller with
    the edge-to-bit table switches to ``lut``).

    Raises:
        ConversionError: the backbone is not recognised.
    """
    backbone, kwargs = detect_arch({k: v for k, v in sd.items() if '.bitsel.' not in k}, scale, source)
    quant = sorted({k.split('.bitsel.')[0] for k in sd if '.bitsel.' in k})
    return {'backbone': dict(kwargs, type=backbone), 'quant_layers': quant, 'mode': 'cadyq',
            'upscale': kwargs.get('upscale', kwargs.get('scale'))}


def pams_backbone(sd, scale=None, source='?'):
    """The full-precision backbone of a PAMS / CADyQ / CABM checkpoint (a
    :class:`~adaptsr.methods.cabm.cabm_arch.CABMNet` state_dict) and the 8-bit clip of each quantised convolution's
    input.

    Args:
        sd (dict): the checkpoint's state_dict (``<conv>.bitsel.*`` keys beside the backbone's own).
        scale (int, optional): the scale, where the backbone's keys do not tell it.
        source (str): the file, for messages.

    Returns:
        tuple: ``(backbone, clips)``: the backbone network (eval mode, strict load of the non-selector weights) and
        ``{conv name: (bits, alpha)}`` for the quantised convs in order (``alpha`` in the network's activation units).

    Raises:
        ValueError: not a CABMNet state_dict. ConversionError: the backbone is not recognised.
    """
    if not is_cabm_state_dict(sd):
        raise ValueError(f'{source}: not a PAMS/CADyQ/CABM checkpoint (no <conv>.bitsel.* keys)')
    kwargs = cabm_net_kwargs(sd, scale, source)
    quant = CABMNet(**kwargs)
    quant.load_state_dict(sd, strict=True)
    clips = {}
    for name, sel in zip(quant.quant_names, quant.selectors()):
        q = sel.quantizers()[sel.bits.index(8)] if 8 in sel.bits else sel.quantizers()[-1]
        clips[name] = (q.bits, float(q.alpha.detach()))
    opt = dict(kwargs['backbone'])
    net = ARCH_REGISTRY.get(opt.pop('type'))(**opt)
    net.load_state_dict({k: v for k, v in sd.items() if '.bitsel.' not in k}, strict=True)
    return net.eval(), clips


def deploy_backbone(sd, scale, source='?'):
    """The network to export: the full-precision backbone, and ``int8_clips`` for an INT8 ONNX model that uses the
    learned clips (:func:`adaptsr.deploy.onnx_quant.quantize_pams_qdq`); ONNX only."""
    net, clips = pams_backbone(sd, scale, source)
    return net, {'int8_clips': clips, 'onnx_only': 'a PAMS/CADyQ/CABM checkpoint'}


# tried before the backbone's own format (the same keys, without the selectors)
register_format('CABMNet', 'cabm', is_cabm_state_dict, cabm_net_kwargs, model_type='CABMModel', first=True,
                deploy=deploy_backbone)
