"""APEModel: adaptive patch exiting (exit losses + incremental-capacity regression; tiled inference with exits).

Source: S. Wang et al., "Adaptive Patch Exiting for Scalable Single Image Super-Resolution", ECCV 2022
(github.com/littlepure2333/APE): the incremental capacity and its regressor, the exit L1 and IC regression losses,
and patch-wise exiting at test time.
"""

import numpy as np
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn import functional as F

from adaptsr.core.adaptive_model import AdaptiveSRModel
from adaptsr.core.errors import OptionError
from adaptsr.core.tiling import register_crop_mode
from adaptsr.methods.ape.ape_loss import APEExitL1Loss, APEICLoss, per_sample_psnr
from adaptsr.methods.ape.declarations import KNOB_FLAGS
from adaptsr.utils.maps import box_values, overlay_values, upscale_nearest

# the official test drops the border strip that a grid of 48-pixel patches at stride 46 does not cover
register_crop_mode('ape', 48, 46)


@MODEL_REGISTRY.register()
class APEModel(AdaptiveSRModel):
    """Trains and tests the APE archs (:mod:`adaptsr.methods.ape.ape_arch`).

    Training (``train.phases``; the paper fine-tunes every parameter from a pretrained backbone): phase losses
    ``APEExitL1Loss`` (weight 255: L1 on the [0, 255] scale, summed over exits) and ``APEICLoss`` (weight 1). Options
    ``train.ape``: ``psnr_shave`` (default scale + 6), ``prev_psnr0``: ``zero`` (the paper's code, default) or
    ``bicubic`` (PSNR_0 of the bicubic upsampling; an ablation). ``path.strict_load_g: false`` loads a backbone
    checkpoint: only ``regressor.*`` may then be missing. BasicSR ``EDSR``/``RCAN`` checkpoints are renamed on load.

    Test: the LR image is tiled (``val.tile_size`` 48, ``tile_overlap`` 2, i.e. stride 46 as the paper, the last
    tile shifted to the border so the whole image is covered; ``tile_batch`` 500 tiles per call). At each exit the
    tiles whose predicted incremental capacity reaches ``val.exit_threshold`` (the budget knob, default 1 = never
    exit) leave the batch; outputs are merged by overlap averaging. ``val.crop_mode: ape`` reproduces the official
    test's crop of the border strip. Metrics add ``mean_exit``, ``gmacs_per_patch`` (the paper's unit, for the
    tile size), ``exit_hist_{k}`` (fraction of tiles leaving at exit k) and the base ``gflops``/``flops_ratio``
    (tiles at full depth as reference). With ``val.save_img`` the exit depth per tile is saved next to each SR
    image (``*_exits.png``, dark = early exit).
    """

    compilable = False  # decides per input: torch.compile's graph would break at every decision

    val_options = {'exit_threshold': 1.0, 'tile_size': 48, 'tile_overlap': 2, 'tile_batch': 500}
    budget_knob = ('exit_threshold', 'thr')
    knob_flags = KNOB_FLAGS
    summary_stats = ('mean_exit', )
    val_ranges = {'exit_threshold': (0.0, 1.0, False)}  # an IC score; 1 = no early exit
    train_section = 'ape'
    train_options = {'psnr_shave': None, 'prev_psnr0': 'zero'}

    def __init__(self, opt):
        super().__init__(opt)
        if self.method_opt['prev_psnr0'] not in ('zero', 'bicubic'):
            raise ValueError(f"train.ape.prev_psnr0 must be 'zero' or 'bicubic', got {self.method_opt['prev_psnr0']!r}")

    #: ``train.phases[i].forward``: ``exits`` (default: an SR and an IC per exit) or ``backbone`` (the plain network
    #: alone, for a recipe that trains the backbone first: only losses on the final SR, e.g. BasicSR's ``L1Loss``)
    phase_keys = frozenset({'forward'})
    FORWARDS = ('exits', 'backbone')

    @classmethod
    def check_model_options(cls, opt):
        for i, phase in enumerate((opt.get('train') or {}).get('phases') or []):
            if not isinstance(phase, dict):
                continue
            mode = phase.get('forward', 'exits')
            if mode not in cls.FORWARDS:
                raise OptionError(f'train.phases[{i}].forward must be one of {cls.FORWARDS}, got {mode!r}')
            ape_losses = [k for k, v in (phase.get('losses') or {}).items()
                          if isinstance(v, dict) and v.get('type') in ('APEExitL1Loss', 'APEICLoss')]
            if mode == 'backbone' and ape_losses:
                raise OptionError(f'train.phases[{i}].losses.{ape_losses[0]}: a phase with forward: backbone has no '
                                  'exits (use a loss on the final SR, e.g. L1Loss)')

    # training ---------------------------------------------------------------------------------------------------
    def forward_train(self):
        backbone_only = self.phase is not None and self.phase.get('forward', 'exits') == 'backbone'
        self.get_bare_model(self.net_g).train_backbone_only = backbone_only
        if backbone_only:
            self.output = self.net_g(self.lq)
            return {}
        outs, ics = self.net_g(self.lq)
        self.output = outs[-1]
        log = {f'ic_{k}': ic.detach().mean() for k, ic in enumerate(ics)}
        return {'outs': outs, 'ics': ics, 'log': log}

    def loss_inputs(self, key, loss_fn, extras):
        if isinstance(loss_fn, APEExitL1Loss):
            return extras['outs'], self.gt
        if isinstance(loss_fn, APEICLoss):
            scale = self.opt['scale']
            shave = scale + 6 if self.method_opt['psnr_shave'] is None else int(self.method_opt['psnr_shave'])
            psnr0 = None
            if self.method_opt['prev_psnr0'] == 'bicubic':
                up = F.interpolate(self.lq, scale_factor=scale, mode='bicubic', align_corners=False)
                psnr0 = per_sample_psnr(up, self.gt, shave)
            return extras['ics'], extras['outs'], self.gt, shave, psnr0
        return super().loss_inputs(key, loss_fn, extras)

    # test -------------------------------------------------------------------------------------------------------
    def inference_kwargs(self, lq):
        return {'exit_threshold': float(self.val_opt['exit_threshold'])}

    def cost_metric_names(self):
        names = super().cost_metric_names()
        names.update({'mean_exit': 'lower', 'gmacs_per_patch': 'lower'})
        names.update({f'exit_hist_{e}': 'higher' for e in range(self.get_bare_model(self.net_g).num_exits)})
        return names

    def cost_metric_values(self):
        values = super().cost_metric_values()
        tiles = max(self.cost.get('tiles', 0), 1)
        values['mean_exit'] = self.cost.get('exit_sum', float('nan')) / tiles
        values['gmacs_per_patch'] = self.cost.get('macs_48', float('nan')) / tiles / 1e9
        for e in range(self.get_bare_model(self.net_g).num_exits):
            values[f'exit_hist_{e}'] = self.cost.get(f'exit_hist_{e}', 0) / tiles
        return values

    def exit_map(self):
        """Mean exit id per LR pixel over the tiles covering it, (H, W) float, from the last :meth:`test`."""
        values = box_values(self.lq.shape[-2:], self.tile_boxes, [t['exit_ids'].tolist() for t in self.traces])
        return np.nan_to_num(values, nan=0.0)  # the tiles cover the image; 0 where none lies, as before

    routing_map_names = ('exits', )

    def routing_maps(self, sr_img=None):
        """``exits``: the mean exit of the tiles covering each pixel, drawn over the SR image (viridis: dark = the
        first exit, yellow = the last, i.e. the whole network)."""
        if not self.traces or not self.tile_boxes:
            return {}
        n_exits = self.get_bare_model(self.net_g).num_exits
        s = self.opt['scale']
        depth = self.exit_map()
        depth = upscale_nearest(depth, (depth.shape[0] * s, depth.shape[1] * s))  # SR size, also without sr_img
        return {'exits': overlay_values(sr_img, depth, 0, n_exits - 1,
                                        f'APE exit per tile: dark = exit 0, yellow = exit {n_exits - 1} (last); '
                                        f'mean {depth.mean():.2f}')}
