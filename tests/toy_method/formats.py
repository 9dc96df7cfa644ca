"""The toy method's checkpoint format: recognised by its ``toy_body`` keys, sizes and scale read off the weights."""
from adaptsr.core.checkpoints import register_format, scale_from_channels


def toy_kwargs(sd, scale=None, source='?'):
    upscale = scale_from_channels('ToyResidualSR', sd['toy_body.2.weight'].shape[0], scale, source)
    return {'upscale': upscale, 'num_feat': sd['toy_body.0.weight'].shape[0]}


register_format('ToyResidualSR', 'toy_method', lambda sd: 'toy_body.0.weight' in sd, toy_kwargs,
                model_type='ToyResidualModel')
