"""SMSR model: L1 + ramped sparsity regularisation, the Gumbel temperature schedule, sparse test with mask reports.

Source: L. Wang et al., CVPR 2021 (github.com/LongguangWang/SMSR, LAVA commit daac49c): spatial and channel masks
learned with Gumbel softmax, sparse convolution at inference, and the sparsity regularisation with its warm-up.
"""

import numpy as np
import torch
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.core.adaptive_model import AdaptiveSRModel
from adaptsr.methods.smsr.smsr_loss import SMSRSparsityLoss


def smsr_epoch(current_iter, iters_per_epoch=1000):
    """The reference code's 1-based epoch of global iteration ``current_iter`` (1 epoch = 1000 iterations)."""
    return (max(int(current_iter), 1) - 1) // iters_per_epoch + 1


def smsr_lambda_ramp(current_iter, iters_per_epoch=1000, warmup_epochs=50):
    """``min((e - 1) / warmup_epochs, 1)``: the sparsity weight's linear warm-up factor."""
    if warmup_epochs <= 0:
        return 1.0
    return min((smsr_epoch(current_iter, iters_per_epoch) - 1) / warmup_epochs, 1.0)


def smsr_tau(current_iter, schedule='linear', iters_per_epoch=1000, tau_epochs=500, tau_min=0.4, tau0=1.0):
    """Gumbel-softmax temperature: ``linear`` = ``max(1 - (e - 1) / tau_epochs, tau_min)`` (the paper's intended
    schedule); ``constant`` = ``tau0`` (what the released code ran, since it never applied the schedule).

    Raises:
        ValueError: unknown schedule.
    """
    if schedule == 'constant':
        return float(tau0)
    if schedule != 'linear':
        raise ValueError(f"train.smsr.tau_schedule must be 'linear' or 'constant', got {schedule!r}")
    return max(tau0 - (smsr_epoch(current_iter, iters_per_epoch) - 1) / tau_epochs, tau_min)


@MODEL_REGISTRY.register()
class SMSRModel(AdaptiveSRModel):
    """Trains and tests :class:`~adaptsr.methods.smsr.smsr_arch.SMSRNet`.

    ``train.smsr`` (all optional): ``iters_per_epoch`` (1000), ``lambda_warmup_epochs`` (50), ``tau_schedule``
    (``linear``, the intended schedule, default; ``constant`` reproduces the official behaviour), ``tau_epochs``
    (500), ``tau_min`` (0.4), ``tau0`` (1.0). Phase losses: ``L1Loss`` with ``loss_weight: 255`` (the L1 on the
    [0, 255] scale) and ``SMSRSparsityLoss`` (lambda0 = 0.1), whose weight is ramped by the iteration.

    Test: the eval forward uses hard masks and the sparse kernels for batch 1. Metrics add ``gflops`` (exact, from
    the masks), ``gflops_full`` (dense), ``gflops_eta`` (the paper's ``nonSMB + eta * SMB``), ``eta`` (kept
    fraction of the block computation), ``mask_density`` (mean spatial mask) and ``density_m{k}`` per module. With
    ``val.save_img`` the spatial masks are saved next to each SR image (``*_masks.png``, one panel per module,
    white = sparse channels computed). ``val.crop_mode: even`` reproduces the official test protocol.
    """

    compilable = False  # decides per input: torch.compile's graph would break at every decision

    train_section = 'smsr'
    train_options = {'iters_per_epoch': 1000, 'lambda_warmup_epochs': 50, 'tau_schedule': 'linear', 'tau_epochs': 500,
                     'tau_min': 0.4, 'tau0': 1.0}
    current_iter = 1

    def schedule_values(self, current_iter):
        o = self.method_opt
        ipe = int(o['iters_per_epoch'])
        tau = smsr_tau(current_iter, o['tau_schedule'], ipe, int(o['tau_epochs']), float(o['tau_min']),
                       float(o['tau0']))
        return tau, smsr_lambda_ramp(current_iter, ipe, int(o['lambda_warmup_epochs']))

    def optimize_parameters(self, current_iter):
        self.current_iter = current_iter
        self.tau, self.ramp = self.schedule_values(current_iter)
        self.get_bare_model(self.net_g).set_tau(self.tau)
        super().optimize_parameters(current_iter)

    def forward_train(self):
        self.output, sparsity = self.net_g(self.lq)
        log = {'tau': torch.tensor(self.tau), 'lambda_ramp': torch.tensor(self.ramp), 'kept': sparsity.detach().mean()}
        return {'sparsity': sparsity, 'log': log}

    def loss_inputs(self, key, loss_fn, extras):
        if isinstance(loss_fn, SMSRSparsityLoss):
            return extras['sparsity'], self.ramp
        return super().loss_inputs(key, loss_fn, extras)

    def cost_metric_names(self):
        names = super().cost_metric_names()
        names.update({'gflops_eta': 'lower', 'eta': 'lower', 'mask_density': 'lower'})
        names.update({f'density_m{k}': 'lower' for k in range(self.get_bare_model(self.net_g).num_module)})
        return names

    def cost_metric_values(self):
        values = super().cost_metric_values()
        pixels = self.cost.get('pixels', 0) or float('nan')
        values['gflops_eta'] = self.cost.get('flops_eta', float('nan')) / 1e9
        values['eta'] = self.cost.get('eta_px', float('nan')) / pixels
        density = [self.cost.get(f'mask_px_m{k}', float('nan')) / pixels
                   for k in range(self.get_bare_model(self.net_g).num_module)]
        values['mask_density'] = sum(density) / len(density)
        values.update({f'density_m{k}': d for k, d in enumerate(density)})
        return values

    summary_stats = ('mask_density', 'eta')
    routing_map_names = ('masks', )

    def routing_maps(self, sr_img=None):
        """``masks``: the spatial mask of each module side by side (white = the pixel takes the dense path), for a
        whole-image test (a tiled test has one mask set per tile)."""
        masks = self.traces[0]['masks'] if len(self.traces) == 1 else None
        if masks is None:
            return {}
        panels = [np.pad((m.cpu().numpy() * 255).astype(np.uint8), ((0, 0), (0, 4)), constant_values=128)
                  for m in masks]
        return {'masks': np.concatenate(panels, axis=1)[:, :-4]}
