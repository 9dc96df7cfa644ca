"""Equivalent transformation (ET) of ETDS, ECBSR, ABPN and the ETDS ablations into :class:`ETDSPlain`, exactly.

Source: Chao et al., CVPR 2023, github.com/ECNUSR/ETDS (Apache-2.0); ECBSR (Zhang et al., ACM MM 2021); ABPN
(Du et al., CVPRW 2021). Written from the ETDS paper, github.com/ECNUSR/ETDS

* Dual stream (``ETDSNet``, ``ETDSAblationResidual``): stacked first conv, block-matrix backbone convs
  ``[[W_b, W_r2b], [0, W_r]]``, both output convs merged and the clamp embedded (``conv_last``/``conv_clip``).
* Anchor nets (``ECBSRPlain``, ``ABPNNet``, ``ETDSOnlyET``): 3 identity pass-through channels (+ zero channels up to a
  multiple of 4) carry the input to the last conv, which adds ``repeat_interleave(x, s^2)``; PReLU slopes of the
  extra channels are 0.
* BasicSR's training-form ``ECBSR`` (edge-oriented conv blocks) is first collapsed by its blocks' own
  ``rep_params()`` into ``ECBSRPlain``.
* ``ETDSAblationAdvancedResidual`` (the residual stream reads the backbone) has no equivalent plain form: refused.

Every conversion is verified on random inputs in [0, 1] (``rand(4, 3, 64, 64)`` as the official check, plus an odd
size): ``max |clamp(source(x), 0, 1) - plain(x)| x 255`` must stay below ``tol`` (0.01 grey levels), else
:class:`~adaptsr.core.reparam.ConversionError`.
"""
import re

import torch
from basicsr.archs.ecbsr_arch import ECBSR
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.core.checkpoints import (build_detected, checkpoint_state_dict, detect_arch, plain_checkpoint,
                                      register_adapter, register_converter, register_format, scale_from_channels,
                                      set_deploy)
from adaptsr.core.reparam import (DTYPE, ConversionError, block_conv, check_equivalence, clip_head, identity_kernel,
                                  plain_out_channels, probe_inputs, repeat_kernel, to_float32)
from adaptsr.methods.baselines.abpn_arch import ABPNNet
from adaptsr.methods.baselines.ecbsr_arch import ECBSRPlain, ecbsr_train_to_plain
from adaptsr.methods.baselines.espcn_arch import ESPCN, FSRCNN
from adaptsr.methods.etds.declarations import CONVERTERS
from adaptsr.methods.etds.etds_arch import (ETDSAblationAdvancedResidual, ETDSAblationPlain, ETDSAblationResidual,
                                            ETDSNet, ETDSOnlyET, ETDSPlain)

DUAL_STREAM_ARCHS = (ETDSNet, ETDSAblationResidual)
ANCHOR_ARCHS = (ECBSRPlain, ETDSOnlyET)


def _conv(module):
    return module.weight.detach().to(DTYPE), module.bias.detach().to(DTYPE)


def _dual_stream_sd(net):
    scale = net.upscale
    w0, b0 = _conv(net.conv_first)
    wr0, br0 = _conv(net.conv_residual_first)
    sd = {'conv_first.weight': torch.cat([w0, wr0]), 'conv_first.bias': torch.cat([b0, br0])}
    cross = getattr(net, 'add_residual_convs', None)
    for i in range(net.num_block):
        wb, bb = _conv(net.backbone_convs[i])
        wr, br = _conv(net.residual_convs[i])
        if cross is not None:
            wx, bx = _conv(cross[i])
        else:
            wx, bx = torch.zeros(wb.shape[0], wr.shape[1], 3, 3, dtype=DTYPE), torch.zeros_like(bb)
        w, b = block_conv([[wb, wx], [None, wr]], [bb + bx, br])
        sd[f'backbone_convs.{i}.weight'], sd[f'backbone_convs.{i}.bias'] = w, b
    wl, bl = _conv(net.conv_last)
    wrl, brl = _conv(net.conv_residual_last)
    sd.update(clip_head(torch.cat([wl, wrl], dim=1), bl + brl, plain_out_channels(scale)))
    return sd, {'num_block': net.num_block, 'num_feat': sd['conv_first.weight'].shape[0], 'act_type': 'relu'}


def _anchor_layers(net):
    """(convs [(w, b)], PReLU slopes or None) of an anchor net: first, M middle, last."""
    name = type(net).__name__
    if isinstance(net, ETDSOnlyET):
        convs = [net.conv_first, *net.backbone_convs, net.conv_last]
        return [_conv(c) for c in convs], None, 'relu'
    convs = [_conv(layer[0]) for layer in net.backbone]
    if net.act_type == 'prelu':
        slopes = [layer[1].weight.detach().to(DTYPE) for layer in list(net.backbone)[:-1]]
        if any(s.numel() != convs[0][0].shape[0] for s in slopes):
            raise ConversionError(f'{name}: PReLU slopes must be per channel ({convs[0][0].shape[0]} values)')
        return convs, slopes, 'prelu'
    return convs, None, 'relu'


def _anchor_sd(net, multiple=4):
    convs, slopes, act = _anchor_layers(net)
    scale = net.upscale
    c = convs[0][0].shape[0]
    cin = convs[0][0].shape[1]
    extra = cin + (-(c + cin)) % multiple  # identity channels + zero channels up to a multiple of `multiple`
    pad = extra - cin
    zeros = torch.zeros
    w0, b0 = convs[0]
    first = torch.cat([w0, identity_kernel(cin), zeros(pad, cin, 3, 3, dtype=DTYPE)])
    sd = {'conv_first.weight': first, 'conv_first.bias': torch.cat([b0, zeros(extra, dtype=DTYPE)])}
    ident = zeros(extra, extra, 3, 3, dtype=DTYPE)  # pass-through of the identity channels, zero channels stay 0
    ident[:cin, :cin] = identity_kernel(cin)
    for i, (w, b) in enumerate(convs[1:-1]):
        wi, bi = block_conv([[w, None], [None, ident]], [b, zeros(extra, dtype=DTYPE)])
        sd[f'backbone_convs.{i}.weight'], sd[f'backbone_convs.{i}.bias'] = wi, bi
    wl, bl = convs[-1]
    rep = torch.cat([repeat_kernel(cin, scale * scale), zeros(wl.shape[0], pad, 3, 3, dtype=DTYPE)], dim=1)
    sd.update(clip_head(torch.cat([wl, rep], dim=1), bl, plain_out_channels(scale)))
    if act == 'prelu':
        ext = [torch.cat([s, zeros(extra, dtype=DTYPE)]) for s in slopes]
        sd['act_first.weight'] = ext[0]
        for i, s in enumerate(ext[1:]):
            sd[f'backbone_acts.{i}.weight'] = s
    return sd, {'num_block': len(convs) - 2, 'num_feat': c + extra, 'act_type': act}


def _abpn_sd(net):
    """ABPN as released -> ETDSPlain: the anchor-net ET for the first and middle convs (3 pass-through channels, zero
    channels up to a multiple of 4), the conv to 3 s^2 channels as the last backbone conv (pass-through channels
    kept, width rounded up to an even number, as the official ``ABPN_ET_M4C28`` files), and the output conv with
    the anchor and the clamp embedded (``conv_last``/``conv_clip``)."""
    convs = [_conv(m) for m in net.convs()]
    scale, cin = net.upscale, 3
    zeros = torch.zeros
    c = convs[0][0].shape[0]
    extra = cin + (-(c + cin)) % 4
    pad = extra - cin
    w0, b0 = convs[0]
    sd = {'conv_first.weight': torch.cat([w0, identity_kernel(cin), zeros(pad, cin, 3, 3, dtype=DTYPE)]),
          'conv_first.bias': torch.cat([b0, zeros(extra, dtype=DTYPE)])}
    ident = zeros(extra, extra, 3, 3, dtype=DTYPE)
    ident[:cin, :cin] = identity_kernel(cin)
    mids = convs[1:-2]
    for i, (w, b) in enumerate(mids):
        sd[f'backbone_convs.{i}.weight'], sd[f'backbone_convs.{i}.bias'] = block_conv([[w, None], [None, ident]],
                                                                                      [b, zeros(extra, dtype=DTYPE)])
    wt, bt = convs[-2]
    t = wt.shape[0]
    t_extra = cin + (-(t + cin)) % 2
    carry = zeros(t_extra, extra, 3, 3, dtype=DTYPE)
    carry[:cin, :cin] = identity_kernel(cin)
    n = len(mids)
    sd[f'backbone_convs.{n}.weight'], sd[f'backbone_convs.{n}.bias'] = block_conv(
        [[wt, None], [None, carry]], [bt, zeros(t_extra, dtype=DTYPE)])
    wl, bl = convs[-1]
    rep = torch.cat([repeat_kernel(cin, scale * scale), zeros(wl.shape[0], t_extra - cin, 3, 3, dtype=DTYPE)], dim=1)
    sd.update(clip_head(torch.cat([wl, rep], dim=1), bl, plain_out_channels(scale)))
    return sd, {'num_block': n + 1, 'num_feat': c + extra, 'tail_feat': t + t_extra, 'act_type': 'relu'}


def et_convert(net, tol=0.01, inputs=None):
    """Equivalent transformation of a trained network into :class:`ETDSPlain`, verified.

    Args:
        net (nn.Module): ``ETDSNet``, ``ETDSAblationResidual``, ``ETDSOnlyET``, ``ECBSRPlain``, ``ABPNNet`` or
            BasicSR's ``ECBSR`` (training form).
        tol (float): largest allowed ``max |clamp(net(x), 0, 1) - plain(x)| x 255``.
        inputs (list[Tensor] | None): check inputs (N, 3, H, W) in [0, 1]; default :func:`probe_inputs`.

    Returns:
        tuple[ETDSPlain, dict]: the plain network (eval mode, float32) and ``{'max_diff_255', 'num_block',
        'num_feat', 'act_type', 'scale', 'source_arch'}``.

    Raises:
        ConversionError: a form without an equivalent plain net (advanced residual, already plain), or a result
            outside ``tol``.
    """
    name = type(net).__name__
    source = net
    if isinstance(net, ECBSR):
        net, name = ecbsr_train_to_plain(net), 'ECBSRPlain'
    if isinstance(net, DUAL_STREAM_ARCHS):
        sd, cfg = _dual_stream_sd(net)
    elif isinstance(net, ANCHOR_ARCHS):
        sd, cfg = _anchor_sd(net)
    elif isinstance(net, ABPNNet):
        sd, cfg = _abpn_sd(net)
    elif isinstance(net, ETDSAblationAdvancedResidual):
        raise ConversionError('ETDSAblationAdvancedResidual is not convertible: its advanced_residual_convs feed the '
                              'backbone into the residual stream, which no plain conv+ReLU net reproduces '
                              '(the advanced-residual ablation of Chao et al., CVPR 2023)')
    elif isinstance(net, (ETDSPlain, ETDSAblationPlain)):
        raise ConversionError(f'{name} is already a plain network; there is nothing to convert')
    else:
        raise ConversionError(f'no equivalent transformation for {name}; convertible: ECBSR, ABPNNet, '
                              f'{", ".join(c.__name__ for c in DUAL_STREAM_ARCHS + ANCHOR_ARCHS)}')
    scale = net.upscale
    plain = ARCH_REGISTRY.get('ETDSPlain')(upscale=scale, num_block=cfg['num_block'], num_feat=cfg['num_feat'],
                                           act_type=cfg['act_type'], tail_feat=cfg.get('tail_feat'))
    plain.load_state_dict(to_float32(sd), strict=True)
    plain.eval()
    was_training = source.training
    diff = check_equivalence(source, plain, inputs or probe_inputs(), tol, what=f'{name} -> ETDSPlain',
                             ref_train_mode=isinstance(source, ECBSR))  # its multi-branch forward
    source.train(was_training)
    return plain, dict(cfg, scale=scale, source_arch=type(source).__name__, max_diff_255=diff)


# ------------------------------------------------------------------------------------------ state_dict level
def _single_stream_kwargs(arch, plain=False):
    """Hyperparameters of the ``conv_first`` / ``backbone_convs`` / ``conv_last`` family read off a state_dict.

    ``plain``: :class:`ETDSPlain` (the 3 residual channels are part of ``num_feat``, the output convs are
    ``plain_out_channels`` wide, PReLU when ``act_first`` exists); else a training form whose ``conv_first`` has
    ``num_feat - 3`` channels and ``conv_last`` 3 s^2."""

    def read(sd, scale, source='?'):
        m = len([k for k in sd if re.match(r'backbone_convs\.\d+\.weight$', k)])
        scale = scale_from_channels(arch, sd['conv_last.weight'].shape[0], scale, source,
                                    plain_out_channels if plain else (lambda s: 3 * s * s))
        kwargs = {'num_block': m, 'num_feat': sd['conv_first.weight'].shape[0] + (0 if plain else 3), 'upscale': scale}
        if plain:
            if 'act_first.weight' in sd:
                kwargs['act_type'] = 'prelu'
            tail = sd['conv_last.weight'].shape[1]
            if tail != kwargs['num_feat']:
                kwargs['tail_feat'] = tail
        return kwargs

    return read


def abpn_et_layout(sd):
    """The official ET form of ABPN (``ABPN_ET_*`` files: ABPN's ``backbone.{i}`` indices, a 1x1 clip conv last)."""
    last = max((int(m.group(1)) for k in sd for m in [re.match(r'backbone\.(\d+)\.weight$', k)] if m), default=-1)
    return last > 0 and tuple(sd[f'backbone.{last}.weight'].shape[-2:]) == (1, 1)


def abpn_et_to_plain_sd(sd):
    """An official ``ABPN_ET`` state_dict renamed into :class:`ETDSPlain` (``tail_feat`` = the width of its conv to
    3 s^2 channels): ``backbone.0`` -> ``conv_first``, the middle convs and the conv to 3 s^2 -> ``backbone_convs``,
    then ``conv_last`` and the 1x1 ``conv_clip``."""
    mids = sorted({int(m.group(1)) for k in sd for m in [re.match(r'backbone\.(\d+)\.0\.weight$', k)] if m})
    n = len(mids)
    names = {'backbone.0': 'conv_first', **{f'backbone.{i}.0': f'backbone_convs.{j}' for j, i in enumerate(mids)},
             f'backbone.{n + 2}': f'backbone_convs.{n}', f'backbone.{n + 4}': 'conv_last',
             f'backbone.{n + 6}': 'conv_clip'}
    return {names[k.rsplit('.', 1)[0]] + '.' + k.rsplit('.', 1)[1]: v for k, v in sd.items()}


def _has(*keys, without=()):
    return lambda sd: all(k in sd for k in keys) and not any(k in sd for k in without)


# ETDS's checkpoint formats (official and adaptsr names); the scale is read off the output convs, or checked against
# them where given
_RESIDUALS = ('conv_residual_first.weight', 'add_residual_convs.0.weight', 'advanced_residual_convs.0.weight')
register_format('ETDSPlain', 'etds', _has('conv_first.weight', 'conv_clip.weight'),
                _single_stream_kwargs('ETDSPlain', plain=True))
register_format('ETDSPlain', 'etds', abpn_et_layout,
                lambda sd, scale, source='?': _single_stream_kwargs('ETDSPlain', plain=True)(abpn_et_to_plain_sd(sd),
                                                                                             scale, source))
register_format('ETDSAblationAdvancedResidual', 'etds', _has('advanced_residual_convs.0.weight'),
                _single_stream_kwargs('ETDSAblationAdvancedResidual'))
register_format('ETDSNet', 'etds', _has('add_residual_convs.0.weight', without=('advanced_residual_convs.0.weight', )),
                _single_stream_kwargs('ETDSNet'))
register_format('ETDSAblationResidual', 'etds', _has('conv_residual_first.weight', without=_RESIDUALS[1:]),
                _single_stream_kwargs('ETDSAblationResidual'))
# one conv stream, with (only-ET ablation) or without (the released Plain baseline) the nearest-upsampling shortcut:
# the keys are the same, so the width tells them apart, as released: the only-ET stream is C - 3 wide with C a
# multiple of 4 (13, 29, 45), the Plain stream C itself (32). A stream of another width is refused as ambiguous.
_ONE_STREAM = _has('conv_first.weight', without=('conv_clip.weight', ) + _RESIDUALS)


def _plain_kwargs(sd, scale, source='?'):
    kwargs = _single_stream_kwargs('ETDSAblationPlain')(sd, scale, source)
    return dict(kwargs, num_feat=kwargs['num_feat'] - 3)


register_format('ETDSOnlyET', 'etds', lambda sd: _ONE_STREAM(sd) and (sd['conv_first.weight'].shape[0] + 3) % 4 == 0,
                _single_stream_kwargs('ETDSOnlyET'))
register_format('ETDSAblationPlain', 'etds', lambda sd: _ONE_STREAM(sd) and sd['conv_first.weight'].shape[0] % 4 == 0,
                _plain_kwargs)


#: the archs ET turns into :class:`ETDSPlain` or exports as they are (ETDS's own and the baselines it compares with)
ET_ARCHS = ('ETDSNet', 'ETDSAblationResidual', 'ETDSAblationAdvancedResidual', 'ETDSOnlyET', 'ETDSPlain',
            'ETDSAblationPlain', 'ECBSR', 'ECBSRPlain', 'ABPNNet', 'ESPCN', 'FSRCNN')
#: how errors name them
ET_FAMILY = 'an ETDS/ECBSR/ABPN state_dict'
#: networks exported as they are (already plain, or without an equivalent transformation: the released baselines)
PLAIN_ARCHS = (ETDSPlain, ETDSAblationPlain, ESPCN, FSRCNN)


def infer_arch(sd, scale, source='?'):
    """Arch name and kwargs of a state_dict of :data:`ET_ARCHS` (:func:`adaptsr.core.checkpoints.detect_arch`).

    Raises:
        ConversionError: unknown layout, or shapes that disagree with ``scale``.
    """
    return detect_arch(sd, scale, source, archs=ET_ARCHS, what=ET_FAMILY)


def build_from_state_dict(sd, scale, source='?'):
    """Instantiate the inferred arch of :data:`ET_ARCHS` and load ``sd`` strictly."""
    return build_detected(sd, scale, source, archs=ET_ARCHS, what=ET_FAMILY)


def convert_etds(train_sd, scale, tol=0.01, source='?'):
    """Pure state_dict function: training form (dual stream, only-ET, ECBSR, ABPN) -> ``ETDSPlain`` state_dict.

    Returns:
        tuple[dict, dict]: plain state_dict (float32) and the conversion info (see :func:`et_convert`).
    """
    plain, info = et_convert(build_from_state_dict(train_sd, scale, source), tol=tol)
    return plain.state_dict(), info


def deploy_plain(sd, scale, source='?'):
    """The network to export: the ET form (plain conv + activation, clamp embedded) of a training form, verified.

    Returns:
        tuple[nn.Module, dict]: the network and ``{'note': ...}`` naming the conversion and its difference.
    """
    net = build_from_state_dict(sd, scale, source)
    if isinstance(net, PLAIN_ARCHS):
        return net, {}
    plain, info = et_convert(net)
    return plain, {'note': f'converted {info["source_arch"]} -> ETDSPlain: max |difference| x 255 = '
                           f'{info["max_diff_255"]:.3g}'}


for _arch in ('ETDSNet', 'ETDSAblationResidual', 'ETDSOnlyET', 'ETDSPlain', 'ETDSAblationPlain', 'ECBSR', 'ECBSRPlain',
              'ABPNNet'):
    set_deploy(_arch, deploy_plain)


# ---------------------------------------------------------------------------------- adaptsr-convert --method
def _etds(ckpt, scale=4, source='?', param_key='auto', et=True, **_):
    """ETDS family -> ``ETDSPlain``: released plain files are checked and wrapped; training forms (ours or the
    official ablations; also ECBSR/ABPN states) are converted by ET and verified."""
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    if isinstance(net, ETDSPlain):
        return plain_checkpoint(net, {'source_arch': 'ETDSPlain', 'max_diff_255': 0.0}, scale, source, 'etds')
    plain, info = et_convert(net)
    return plain_checkpoint(plain, info, scale, source, 'etds')


def _ecbsr(ckpt, scale=4, source='?', param_key='auto', et=False, **_):
    """ECBSR: BasicSR training form (ECB blocks) -> ``ECBSRPlain`` (verified); released ``ECBSRPlain`` files are
    wrapped; with ``et``, either goes on to ``ETDSPlain`` (C + 4 channels, PReLU, embedded clamp)."""
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    info = {'source_arch': type(net).__name__, 'max_diff_255': 0.0}
    if isinstance(net, ECBSR):
        plain = ecbsr_train_to_plain(net)
        info['max_diff_255'] = check_equivalence(net, plain, probe_inputs(), what='ECBSR -> ECBSRPlain',
                                                 ref_train_mode=True)
        net = plain
    elif not isinstance(net, ECBSRPlain):
        raise ConversionError(f'{source}: --method ecbsr expects an ECBSR checkpoint, found {type(net).__name__}')
    if et:
        net, info = et_convert(net)
    return plain_checkpoint(net, info, scale, source, 'ecbsr')


def _abpn(ckpt, scale=4, source='?', param_key='auto', **_):
    """ABPN -> ``ETDSPlain`` by ET, verified."""
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    if not isinstance(net, ABPNNet):
        raise ConversionError(f'{source}: --method abpn expects an ABPN checkpoint, found {type(net).__name__}')
    plain, info = et_convert(net)
    return plain_checkpoint(plain, info, scale, source, 'abpn')


register_converter('etds', _etds, CONVERTERS['etds'])
register_converter('ecbsr', _ecbsr, CONVERTERS['ecbsr'])
register_converter('abpn', _abpn, CONVERTERS['abpn'])


def adapt_plain_state_dict(net, sd, source='?'):
    """``ETDSPlain``'s adapter (:func:`~adaptsr.core.checkpoints.register_adapter`): a training-form state_dict (dual
    stream, only-ET, ECBSR, ABPN) -> ``net``'s, by the equivalent transformation, verified; an official ``ABPN_ET``
    file renamed; a plain one is returned as it is (the caller loads it strictly).

    Raises:
        ConversionError: not convertible, or the check fails. RuntimeError: the converted model's size differs
        from this network's (another configuration).
    """
    if 'conv_clip.weight' in sd:
        return sd
    if abpn_et_layout(sd):  # an official ABPN_ET file: the same layers under ABPN's names
        return abpn_et_to_plain_sd(sd)
    plain_sd, info = convert_etds(sd, scale=net.upscale, source=source)
    own = net.state_dict()
    bad = [f'{k}: converted {tuple(v.shape)} vs network {tuple(own[k].shape)}'
           for k, v in plain_sd.items() if k in own and own[k].shape != v.shape]
    if bad or set(own) != set(plain_sd):
        raise RuntimeError(f'{source}: converts to ETDSPlain(num_block={info["num_block"]}, '
                           f'num_feat={info["num_feat"]}, act_type={info["act_type"]}), which differs from this '
                           f'network: {bad or sorted(set(own) ^ set(plain_sd))}')
    get_root_logger().info(f'{source}: converted from {info["source_arch"]} to ETDSPlain '
                           f'(max |difference| x 255 = {info["max_diff_255"]:.2e})')
    return plain_sd


register_adapter('ETDSPlain', adapt_plain_state_dict)
