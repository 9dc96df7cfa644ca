"""State-dict renames into the APE archs (the APE paper, github.com/littlepure2333/APE).

* BasicSR's ``EDSR`` / ``RCAN`` checkpoints (``conv_first``, ``body.k.conv1``, ``residual_group``, ``upsample``, ...)
  -> the EDSR-PyTorch / official RCAN names of :class:`~adaptsr.methods.ape.ape_arch.APEEDSR` /
  :class:`~adaptsr.methods.ape.ape_arch.APERCAN` (MeanShift convs filled from the arch: BasicSR keeps the mean as a
  constant, with the same value and std 1);
* the author's DynamicSR checkpoints (``eedm.*``) -> ``regressor.*``;
* official EDSR-PyTorch / RCAN / VDSR files and ECBSR's released files already carry the APE archs' names.
"""
import re

_EDSR = [(r'^conv_first\.', 'head.0.'), (r'^body\.(\d+)\.conv1\.', r'body.\1.body.0.'),
         (r'^body\.(\d+)\.conv2\.', r'body.\1.body.2.'), (r'^upsample\.', 'tail.0.'), (r'^conv_last\.', 'tail.1.')]
_RCAN = [(r'^conv_first\.', 'head.0.'), (r'^body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.1\.',
                                          r'body.\1.body.\2.body.3.conv_du.0.'),
         (r'^body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.3\.', r'body.\1.body.\2.body.3.conv_du.2.'),
         (r'^body\.(\d+)\.residual_group\.(\d+)\.rcab\.', r'body.\1.body.\2.body.'),
         (r'^upsample\.', 'tail.0.'), (r'^conv_last\.', 'tail.1.')]


def _count(sd, pattern):
    return len({int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m})


def is_basicsr_layout(sd):
    """True for a BasicSR ``EDSR``/``RCAN`` state_dict (``conv_first`` and ``conv_after_body``)."""
    return 'conv_first.weight' in sd and 'conv_after_body.weight' in sd


def basicsr_to_ape(sd, target, source='?'):
    """Rename a BasicSR ``EDSR`` or ``RCAN`` state_dict into ``target``'s names.

    Args:
        sd (dict): BasicSR state_dict.
        target (nn.Module): an ``APEEDSR`` or ``APERCAN`` (its ``basicsr_layout``, ``'EDSR'`` or ``'RCAN'``,
            names the layout it takes; its MeanShift convs fill ``sub_mean``/``add_mean``).
        source (str): file name for error messages.

    Returns:
        dict: state_dict with ``target``'s names (``regressor.*`` absent).

    Raises:
        ValueError: the layout does not match the target type, or the block/group count differs.
    """
    name = type(target).__name__
    layout = getattr(target, 'basicsr_layout', None)
    rcan = any('.residual_group.' in k for k in sd)
    if layout == 'EDSR' and not rcan:
        rules, n_body = _EDSR, _count(sd, r'^body\.(\d+)\.conv1\.')
        units = target.num_units
    elif layout == 'RCAN' and rcan:
        rules, n_body = _RCAN, _count(sd, r'^body\.(\d+)\.residual_group\.')
        units = target.num_units
    else:
        raise ValueError(f'{source}: a BasicSR {"RCAN" if rcan else "EDSR"} checkpoint cannot load into {name}')
    if n_body != units:
        raise ValueError(f'{source}: the checkpoint has {n_body} body units, {name} is built with {units}')
    out = {}
    for k, v in sd.items():
        new = k
        if k.startswith('conv_after_body.'):
            new = f'body.{units}.' + k[len('conv_after_body.'):]
        elif rcan and re.match(r'^body\.(\d+)\.conv\.', k):
            g = int(k.split('.')[1])
            new = f'body.{g}.body.{len(target.body[g].body) - 1}.' + k.split('.', 3)[-1]
        else:
            for pat, rep in rules:
                if re.match(pat, k):
                    new = re.sub(pat, rep, k)
                    break
        out[new] = v
    own = target.state_dict()
    for k in ('sub_mean.weight', 'sub_mean.bias', 'add_mean.weight', 'add_mean.bias'):
        out.setdefault(k, own[k].clone())
    return out


def to_ape_state_dict(sd, target, source='?'):
    """Any supported backbone/APE state_dict -> ``target``'s names (BasicSR layouts renamed, ``eedm`` ->
    ``regressor``); others are returned unchanged for the caller's strict check."""
    sd = {('regressor.' + k[5:] if k.startswith('eedm.') else k): v for k, v in sd.items()}
    if is_basicsr_layout(sd):
        regressor = {k: v for k, v in sd.items() if k.startswith('regressor.')}
        sd = basicsr_to_ape({k: v for k, v in sd.items() if not k.startswith('regressor.')}, target, source)
        sd.update(regressor)
    return sd
