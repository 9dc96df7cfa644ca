"""PCSR model: phase 0 (backbone + heavy upsampler), phase 1 (light upsampler + classifier), adaptive test.

Source: Jeong et al., ECCV 2024, github.com/3587jjh/PCSR; specs/pcsr.md 4-5.
"""
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.losses.pcsr_loss import PCSRAverageCostLoss
from adaptsr.models.adaptive_model import AdaptiveSRModel


@MODEL_REGISTRY.register()
class PCSRModel(AdaptiveSRModel):
    """Trains and tests :class:`~adaptsr.archs.pcsr_arch.PCSRNet`.

    Phase options (``train.phases[i]``): ``forward: heavy`` (phase 0: dense heavy path, L1) or ``forward: mix``
    (phase 1: soft mixture ``p0 * light + p1 * heavy``; losses may include ``PCSRAverageCostLoss``, which gets the
    heavy probabilities). Phase 1 freezes ``encoder`` and ``heavy_sampler`` and keeps them in eval
    (``frozen_eval: true``) as the paper does.

    Test options (``val``): ``k`` (float, default 0), ``adaptive`` (bool, ADM 2-means instead of k), ``refine``
    (bool, default true) and
    ``budget_sweep`` (list of k values and/or ``adaptive``). During training, a phase with ``forward: heavy``
    validates the dense heavy path.
    """

    phase_keys = frozenset({'forward'})

    def __init__(self, opt):
        val = opt.get('val') or {}
        self.k = float(val.get('k', 0.0))
        self.adaptive = bool(val.get('adaptive', False))
        self.refine = bool(val.get('refine', True))
        super().__init__(opt)

    # ---------------------------------------------------------------------------------------------- training
    def forward_mode(self):
        return self.phase.get('forward', 'heavy') if self.phase is not None else 'infer'

    def forward_train(self):
        mode = self.forward_mode()
        if mode == 'heavy':
            self.output = self.net_g(self.lq, mode='heavy')
            return {}
        if mode == 'mix':
            self.output, p_heavy = self.net_g(self.lq, mode='mix')
            return {'p_heavy': p_heavy, 'log': {'p_heavy': p_heavy.mean().detach()}}
        raise ValueError(f"train.phases[{self.phase.index}].forward must be 'heavy' or 'mix', got {mode!r}")

    def loss_inputs(self, key, loss_fn, extras):
        if isinstance(loss_fn, PCSRAverageCostLoss):
            if 'p_heavy' not in extras:
                raise ValueError(f'phase {self.phase.name!r}: {key} (PCSRAverageCostLoss) needs forward: mix')
            return (extras['p_heavy'], )
        return super().loss_inputs(key, loss_fn, extras)

    # ---------------------------------------------------------------------------------------------- testing
    def apply_budget(self, value):
        if isinstance(value, str):
            if value != 'adaptive':
                raise ValueError(f"val.budget_sweep: PCSR values are numbers (k) or 'adaptive', got {value!r}")
            self.adaptive = True
        else:
            self.adaptive, self.k = False, float(value)

    def budget_label(self):
        return 'adaptive' if self.adaptive else f'k={self.k:g}'

    def run_network(self, net, lq):
        bare = self.get_bare_model(net)
        if self.opt['is_train'] and self.forward_mode() == 'heavy':
            out = bare.forward_heavy(lq)
            bare.last_cost = bare.dense_cost(lq)
            return out
        return bare.infer(lq, k=self.k, adaptive=self.adaptive, refine=self.refine)[0]

    def cost_metric_names(self):
        names = super().cost_metric_names()
        names['heavy_ratio'] = 'lower'
        return names

    def cost_metric_values(self):
        values = super().cost_metric_values()
        values['heavy_ratio'] = self.cost.get('heavy_ratio', 1.0)
        return values
