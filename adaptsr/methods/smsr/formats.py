"""SMSR's checkpoint format and the converter of the official files (github.com/LongguangWang/SMSR: legacy pickles
of a raw OrderedDict, whose names adaptsr's :class:`~adaptsr.methods.smsr.smsr_arch.SMSRNet` keeps)."""
from adaptsr.core.checkpoint_io import basicsr_checkpoint
from adaptsr.core.checkpoints import checkpoint_state_dict, detect_arch, register_converter, register_format
from adaptsr.core.errors import WrongScaleError
from adaptsr.methods.smsr.declarations import CONVERTERS


def smsr_net_kwargs(sd, scale=None, source='?'):
    """SMSRNet kwargs read off an SMSR state_dict (official names): width and the scale of its tail.

    Raises:
        WrongScaleError: ``scale`` given and the tail is for another one.
    """
    found = round((sd['tail.0.weight'].shape[0] / 3)**0.5)
    if scale is not None and found != scale:
        raise WrongScaleError(f'{source}: SMSR checkpoint is x{found} (tail.0 has {sd["tail.0.weight"].shape[0]} '
                              f'channels), but the scale is {scale}')
    return {'num_feat': sd['head.0.weight'].shape[0], 'upscale': found}


register_format('SMSRNet', 'smsr', lambda sd: 'body.0.body.ch_mask' in sd and 'tail.0.weight' in sd, smsr_net_kwargs,
                model_type='SMSRModel')


def convert_smsr(ckpt, scale=2, source='?', param_key='auto', **_):
    """Official SMSR state_dict (legacy pickle, raw OrderedDict) -> a BasicSR checkpoint of ``SMSRNet``.

    Raises:
        ConversionError: not an SMSR state_dict. ValueError: its tail is for another scale.
    """
    sd = checkpoint_state_dict(ckpt, source, param_key)
    _, kwargs = detect_arch(sd, None, source, archs=('SMSRNet', ))
    if kwargs['upscale'] != scale:
        raise ValueError(f'{source}: SMSR checkpoint is x{kwargs["upscale"]} (tail.0 has '
                         f'{sd["tail.0.weight"].shape[0]} channels), but --scale is {scale}')
    return basicsr_checkpoint(sd, 'smsr', 'SMSRNet', scale, source)


register_converter('smsr', convert_smsr, CONVERTERS['smsr'])
