"""APE's checkpoint format: an ECBSR backbone with exits and the incremental-capacity regressor (``regressor.*``).

APE files on EDSR/RCAN backbones are built from their options (the backbone's size is in the YAML); their layouts
are adapted by :func:`adaptsr.methods.ape.layouts.to_ape_state_dict`.
"""
import re

from adaptsr.core.checkpoints import register_format, scale_from_channels


def ape_ecbsr_kwargs(sd, scale=None, source='?'):
    """APEECBSR kwargs read off a state_dict: width, depth, activation, scale (the tail's 3 s^2 channels) and the
    exit tails (``exit_tails.{e}``: separate tails, one per exit but the last, giving the exit interval).

    Raises:
        ValueError (WrongScaleError): ``scale`` given and the tail is for another one.
    """
    idx = sorted({int(m.group(1)) for k in sd for m in [re.match(r'backbone\.(\d+)\.0\.weight$', k)] if m})
    found = scale_from_channels('APEECBSR', sd[f'backbone.{idx[-1]}.0.weight'].shape[0], scale, source)
    num_block = len(idx) - 2
    tails = len({k.split('.')[1] for k in sd if k.startswith('exit_tails.')})
    kwargs = {'upscale': found, 'num_block': num_block, 'num_feat': sd['backbone.0.0.weight'].shape[0],
              'act_type': 'prelu' if 'backbone.0.1.weight' in sd else 'relu'}
    if tails:
        kwargs.update(exit_tails='separate', exit_interval=num_block // (tails + 1))
    return kwargs


# tried before the backbone's own format (an ECBSR file has the same backbone keys, without the regressor)
register_format('APEECBSR', 'ape', lambda sd: 'backbone.0.0.weight' in sd and 'regressor.2.weight' in sd,
                ape_ecbsr_kwargs, model_type='APEModel', first=True)
