"""APE training losses: L1 at every exit and the incremental-capacity regression.

Source: S. Wang et al., "Adaptive Patch Exiting for Scalable Single Image Super-Resolution", ECCV 2022
(github.com/littlepure2333/APE; the author's DynamicSR, strategy ``de3``):
``loss = sum_i L1(out_i, hr) + MSE(ic_i, 1 - tanh(PSNR_i - PSNR_{i-1}))`` with ``PSNR_{-1} = 0``, the target
detached, the L1 on the [0, 255] scale.
"""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn


def per_sample_psnr(sr, hr, shave=0):
    """RGB PSNR (dB) per sample of unclamped, unrounded tensors, for pixel range [0, 1].

    Args:
        sr (Tensor), hr (Tensor): (N, C, H, W) in [0, 1] (``sr`` may leave the range).
        shave (int): border pixels left out on each side (APE: scale + 6).

    Returns:
        Tensor: (N,) PSNR in dB (MSE floored at 1e-10, i.e. at most 100 dB).
    """
    if shave:
        sr, hr = sr[..., shave:-shave, shave:-shave], hr[..., shave:-shave, shave:-shave]
    mse = (sr - hr).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


#: the IC regression targets :func:`ic_targets` knows
IC_TARGETS = ('incremental', 'remaining', 'remaining_mse')


def ic_targets(outs, hr, shave, psnr0=None, target='incremental', mse_scale=1000.0, psnr_scale=1.0):
    """Incremental-capacity targets per exit, detached.

    ``incremental`` (the paper): ``1 - tanh(PSNR_i - PSNR_{i-1})``, the gain of exit ``i`` over the one before;
    a patch leaves where the last step gained little. ``remaining`` (an adaptsr variant): ``1 - tanh(max(PSNR_last -
    PSNR_i, 0))``, what the deeper exits would still add; a patch leaves where little is left to gain, which stays
    right when the gains along the depth are not decreasing (a small step followed by large ones).
    ``remaining_mse`` (an adaptsr variant): ``1 - tanh(mse_scale * max(MSE_i - MSE_last, 0))``, the squared error the
    deeper exits would still remove, in absolute terms: an image's PSNR depends on the sum of its tiles' errors, so
    a flat tile whose small error the last exit halves (3 dB) matters less than a textured tile that gains 0.5 dB.

    Args:
        outs (list[Tensor]): SR per exit, each (N, 3, H, W) in [0, 1].
        hr (Tensor): (N, 3, H, W) in [0, 1].
        shave (int): PSNR border.
        psnr0 (Tensor, optional): (N,) PSNR before the first exit (``incremental`` only); ``None`` = 0 dB (the
            paper's code: exit 0's target is then about 0, so nothing exits there).
        target (str): ``'incremental'``, ``'remaining'`` or ``'remaining_mse'``.
        mse_scale (float): ``remaining_mse`` only: 1 / the MSE (pixels in [0, 1]) at which the target is
            ``1 - tanh(1) = 0.24``; 1000 puts it at 1e-3 (RMSE 8 grey levels).
        psnr_scale (float): ``incremental`` and ``remaining``: the PSNR differences (dB) are multiplied by it
            before the tanh; 1 is the paper's; 5 spreads gains of 0-0.5 dB (a deep network's exits) over the
            targets' range instead of leaving them all near 1.

    Returns:
        list[Tensor]: (N,) targets in [0, 1] (``incremental`` can exceed 1 where an exit is worse than the one
        before), one per exit.

    Raises:
        ValueError: an unknown ``target``.
    """
    if target not in IC_TARGETS:
        raise ValueError(f'APE IC target must be one of {IC_TARGETS}, got {target!r}')
    with torch.no_grad():
        if target == 'remaining_mse':
            crop = (lambda t: t[..., shave:-shave, shave:-shave]) if shave else (lambda t: t)
            mses = [(crop(out.detach()) - crop(hr)).pow(2).flatten(1).mean(1) for out in outs]
            return [1 - torch.tanh(mse_scale * (m - mses[-1]).clamp_min(0)) for m in mses]
        psnrs = [per_sample_psnr(out.detach(), hr, shave) for out in outs]
        if target == 'remaining':
            return [1 - torch.tanh(psnr_scale * (psnrs[-1] - p).clamp_min(0)) for p in psnrs]
        prev = torch.zeros(hr.shape[0], device=hr.device) if psnr0 is None else psnr0.detach()
        targets = []
        for p in psnrs:
            targets.append(1 - torch.tanh(psnr_scale * (p - prev)))
            prev = p
    return targets


@LOSS_REGISTRY.register()
class APEExitL1Loss(nn.Module):
    """``loss_weight * sum_i w_i mean|out_i - hr|`` over the exits' SR outputs.

    Args:
        loss_weight (float): 255 gives the paper's L1 on the [0, 255] scale.
        exit_weights (list[float], optional): one weight ``w_i >= 0`` per exit, first exit first; ``None`` = all 1
            (the paper). A larger last weight keeps a backbone whose exits share one reconstruction (e.g. the plain
            ECBSR) close to its full-depth quality.

    Raises:
        ValueError: a negative or all-zero ``exit_weights``, or (in forward) one whose length is not the number of
            exits.
    """

    def __init__(self, loss_weight=255.0, exit_weights=None):
        super().__init__()
        self.loss_weight = float(loss_weight)
        if exit_weights is not None:
            exit_weights = [float(w) for w in exit_weights]
            if any(w < 0 for w in exit_weights) or not any(exit_weights):
                raise ValueError(f'APEExitL1Loss: exit_weights must be >= 0 and not all 0, got {exit_weights}')
        self.exit_weights = exit_weights

    def forward(self, outs, hr):
        weights = self.exit_weights or [1.0] * len(outs)
        if len(weights) != len(outs):
            raise ValueError(f'APEExitL1Loss: exit_weights has {len(weights)} entries for {len(outs)} exits')
        return self.loss_weight * sum(w * (out - hr).abs().mean() for w, out in zip(weights, outs) if w)


@LOSS_REGISTRY.register()
class APEICLoss(nn.Module):
    """``loss_weight * sum_i MSE(ic_i, target_i)``: the shared regressor's incremental-capacity regression.

    Args:
        loss_weight (float): 1 (the paper's balance against :class:`APEExitL1Loss` with weight 255).
        target (str): ``'incremental'`` (the paper), ``'remaining'`` or ``'remaining_mse'``, see :func:`ic_targets`.
        mse_scale (float): ``remaining_mse``'s scale, see :func:`ic_targets`.
        psnr_scale (float): the dB scale of ``incremental`` and ``remaining``, see :func:`ic_targets` (1: the paper).

    Forward args: ``ics`` (list of (N, 1) in (-1, 1)), ``outs`` (list of SR), ``hr``, ``shave`` (int), ``psnr0``
    ((N,) or None), see :func:`ic_targets`.

    Raises:
        ValueError: an unknown ``target``, a scale <= 0; (in forward) as many IC predictions as exit outputs expected.
    """

    def __init__(self, loss_weight=1.0, target='incremental', mse_scale=1000.0, psnr_scale=1.0):
        super().__init__()
        self.loss_weight = float(loss_weight)
        if target not in IC_TARGETS:
            raise ValueError(f'APEICLoss: target must be one of {IC_TARGETS}, got {target!r}')
        if not float(mse_scale) > 0:
            raise ValueError(f'APEICLoss: mse_scale must be > 0, got {mse_scale!r}')
        if not float(psnr_scale) > 0:
            raise ValueError(f'APEICLoss: psnr_scale must be > 0, got {psnr_scale!r}')
        self.target = target
        self.mse_scale = float(mse_scale)
        self.psnr_scale = float(psnr_scale)

    def forward(self, ics, outs, hr, shave, psnr0=None):
        if len(ics) != len(outs):
            raise ValueError(f'APEICLoss: {len(ics)} IC predictions for {len(outs)} exit outputs')
        targets = ic_targets(outs, hr, shave, psnr0, self.target, self.mse_scale, self.psnr_scale)
        return self.loss_weight * sum(((ic.view(-1) - t) ** 2).mean() for ic, t in zip(ics, targets))
