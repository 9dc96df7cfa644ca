"""The toy method's model: its knob ``strength`` (a number in [0, 2]), its command-line flag and its statistic."""
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.core.adaptive_model import AdaptiveSRModel


@MODEL_REGISTRY.register()
class ToyResidualModel(AdaptiveSRModel):
    """Tests :class:`~toy_method.toy_arch.ToyResidualSR`; ``val.strength`` weights its residual (0: bicubic)."""

    val_options = {'strength': 1.0}
    val_ranges = {'strength': (0.0, 2.0, False)}
    budget_knob = ('strength', 's')
    knob_flags = {'strength': {'flag': '--strength', 'val': 'strength', 'type': float,
                               'help': 'toy method: weight of the learned residual (0 = bicubic)'}}
    summary_stats = ('residual_ratio', )

    def inference_kwargs(self, lq):
        return {'strength': float(self.val_opt['strength'])}

    def cost_metric_names(self):
        return dict(super().cost_metric_names(), residual_ratio='lower')

    def cost_metric_values(self):
        values = super().cost_metric_values()
        values['residual_ratio'] = self.cost.get('residual_px', 0) / (self.cost.get('pixels', 0) or float('nan'))
        return values
