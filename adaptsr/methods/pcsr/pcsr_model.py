"""PCSR model: phase 0 (backbone + heavy upsampler), phase 1 (light upsampler + classifier), adaptive test.

Source: Jeong et al., "Accelerating Image Super-Resolution Networks with Pixel-Level Classification", ECCV 2024
(the method section: two upsamplers, the pixel classifier, the average-cost loss, two-phase training and the k / ADM
inference rules); official code github.com/3587jjh/PCSR.
"""
import math

from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.core.adaptive_model import AdaptiveSRModel
from adaptsr.core.tiling import register_crop_mode
from adaptsr.methods.pcsr.declarations import KNOB_FLAGS
from adaptsr.methods.pcsr.pcsr_loss import PCSRAverageCostLoss
from adaptsr.utils.maps import overlay_mask, overlay_values

# PCSR's (and ClassSR/ARM's) ``--crop`` test protocol: LR cropped to the grid of 32-pixel patches at stride 28
register_crop_mode('pcsr', 32, 28)


@MODEL_REGISTRY.register()
class PCSRModel(AdaptiveSRModel):
    """Trains and tests :class:`~adaptsr.methods.pcsr.pcsr_arch.PCSRNet`.

    Phase options (``train.phases[i]``): ``forward: heavy`` (phase 0: dense heavy path, L1), ``forward: light``
    (dense light path: a warm-up of a freshly initialised light upsampler before phase 1; not in the paper) or
    ``forward: mix`` (phase 1: soft mixture ``p0 * light + p1 * heavy``; losses may include ``PCSRAverageCostLoss``,
    which gets the heavy probabilities). Phase 1 freezes ``encoder`` and ``heavy_sampler`` and keeps them in eval
    (``frozen_eval: true``) as the paper does.

    Test options (``val``): ``k`` (float, default 0), ``adaptive`` (bool, ADM 2-means instead of k), ``refine``
    (bool, default true) and ``budget_sweep`` (list of k values and/or ``adaptive``). During training, a phase with
    ``forward: heavy`` validates the dense heavy path, one with ``forward: light`` the dense light path. Metrics add
    ``heavy_ratio`` (fraction of HR pixels that took the heavy upsampler).
    """

    compilable = False  # decides per input: torch.compile's graph would break at every decision

    val_options = {'k': 0.0, 'adaptive': False, 'refine': True}
    knob_flags = KNOB_FLAGS
    summary_stats = ('heavy_ratio', )
    val_ranges = {'k': (None, None, False)}  # any finite k (negative: more heavy pixels)
    phase_keys = frozenset({'forward'})

    # ---------------------------------------------------------------------------------------------- training
    def forward_mode(self):
        return self.phase.get('forward', 'heavy') if self.phase is not None else 'infer'

    def forward_train(self):
        mode = self.forward_mode()
        if mode in ('heavy', 'light'):
            self.output = self.net_g(self.lq, mode=mode)
            return {}
        if mode == 'mix':
            self.output, p_heavy = self.net_g(self.lq, mode='mix')
            return {'p_heavy': p_heavy, 'log': {'p_heavy': p_heavy.mean().detach()}}
        raise ValueError(f"train.phases[{self.phase.index}].forward must be 'heavy', 'light' or 'mix', got {mode!r}")

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
            self.val_opt['adaptive'] = True
        else:
            self.val_opt['adaptive'], self.val_opt['k'] = False, float(value)

    def budget_label(self):
        return 'adaptive' if self.val_opt['adaptive'] else f'k={float(self.val_opt["k"]):g}'

    def inference_kwargs(self, lq):
        if self.opt['is_train'] and self.forward_mode() == 'heavy':
            return {'heavy_only': True}
        if self.opt['is_train'] and self.forward_mode() == 'light':
            return {'k': math.inf, 'adaptive': False, 'refine': False}  # heavy iff l1 - l0 > inf: every pixel light
        return {'k': float(self.val_opt['k']), 'adaptive': bool(self.val_opt['adaptive']),
                'refine': bool(self.val_opt['refine'])}

    def cost_metric_names(self):
        return dict(super().cost_metric_names(), heavy_ratio='lower')

    def heavy_map(self):
        """Share of the heavy upsampler per HR pixel (H, W) float in [0, 1] from the last :meth:`test` (0/1 without
        tiles; overlapping tiles average), or None when the test kept no map."""
        import numpy as np
        maps = [t.get('heavy_map') for t in self.traces]
        if not maps or any(m is None for m in maps):
            return None
        if not self.tile_boxes:
            return maps[0][0, 0].float().cpu().numpy()
        s = self.opt['scale']
        h, w = self.lq.shape[-2:]
        total = np.zeros((h * s, w * s), np.float32)
        count = np.zeros_like(total)
        for boxes, m in zip(self.tile_boxes, maps):
            for i, (t, l, b, r) in enumerate(boxes):
                total[t * s:b * s, l * s:r * s] += m[i, 0].float().cpu().numpy()
                count[t * s:b * s, l * s:r * s] += 1
        return total / np.maximum(count, 1)

    routing_map_names = ('classes', )

    def routing_maps(self, sr_img=None):
        """``classes``: the pixels the classifier sent to the heavy upsampler tinted red over a grey SR image (as
        the official demo's coloured output, github.com/3587jjh/PCSR)."""
        import cv2
        heavy = self.heavy_map()
        if heavy is None:
            return {}
        caption = f'PCSR: red = heavy upsampler ({heavy.mean() * 100:.1f}% of pixels), grey = light'
        if sr_img is None:
            return {'classes': overlay_values(None, heavy, 0, 1, caption, colormap=cv2.COLORMAP_JET)}
        return {'classes': overlay_mask(sr_img, heavy >= 0.5, caption)}

    def cost_metric_values(self):
        values = super().cost_metric_values()
        values['heavy_ratio'] = self.cost.get('heavy_px', 0) / max(self.cost.get('hr_pixels', 0), 1)
        return values
