"""Sparse 3x3 / 1x1 convolution at a set of pixels: gather the active neighbourhoods, then one matrix product.

Used by SMSR's inference (specs/smsr.md 5, "sparse form"): features are kept as zero-padded maps
``(C, (H + 2) * (W + 2))`` so that the 3x3 neighbourhoods of the active pixels are plain column gathers; pixels
outside the mask hold zeros, which is exactly the masked-dense semantics. Only the active pixels' outputs are
computed (``(C_out, C_in * 9) @ (C_in * 9, N)``), so the work is proportional to the mask density.

Source: L. Wang et al., "Exploring Sparsity in Image Super-Resolution for Efficient Inference", CVPR 2021,
github.com/LongguangWang/SMSR (written from the spec's formulas, not the official code).
"""
import torch
from torch.nn import functional as F


class PixelSet:
    """Active pixels of a binary mask (H, W) and the padded-map indices of their 3x3 neighbourhoods.

    Args:
        mask (Tensor): (H, W) bool, the active (sparse) pixels.

    Attributes:
        n (int): number of active pixels.
        flat (Tensor): (N,) indices of the active pixels in the unpadded ``H * W`` map.
        padded (Tensor): (N,) their indices in the padded ``(H + 2) * (W + 2)`` map.
        taps (Tensor): (9, N) padded-map indices of the 3x3 neighbours, tap order ``kh * 3 + kw`` (as
            ``weight.view(C_out, C_in * 9)``).
    """

    def __init__(self, mask):
        h, w = mask.shape
        self.h, self.w = h, w
        self.flat = mask.reshape(-1).nonzero().squeeze(1)
        self.n = int(self.flat.numel())
        rows, cols = self.flat // w, self.flat % w
        self.padded = (rows + 1) * (w + 2) + (cols + 1)
        offsets = torch.tensor([dh * (w + 2) + dw for dh in (-1, 0, 1) for dw in (-1, 0, 1)], device=mask.device)
        self.taps = self.padded.unsqueeze(0) + offsets.unsqueeze(1)
        self.rows = self.taps.t().reshape(-1)  # (N * 9,) pixel-major: for channels-last row gathers
        # neighbours as rows of a compact (1 + N, C) matrix of the active pixels' features, row 0 being zeros
        slot = torch.zeros((h + 2) * (w + 2), dtype=torch.long, device=mask.device)
        slot[self.padded] = torch.arange(1, self.n + 1, device=mask.device)
        self.compact = slot[self.rows]  # (N * 9,)


def gather_compact(compact, pixels):
    """3x3 neighbourhoods from compact features (1 + N, C) (row 0 = zeros, row 1 + k = active pixel k; inactive
    neighbours read row 0): -> (N, 9 * C), columns tap-major."""
    return compact.index_select(0, pixels.compact).reshape(pixels.n, -1)


def gather_rows(rows, pixels):
    """3x3 neighbourhoods of the active pixels from a channels-last padded map: (P, C) -> (N, 9 * C), columns
    ordered tap-major (match ``weight.permute(0, 2, 3, 1).reshape(C_out, 9 * C)``). Contiguous row copies: the fast
    layout for CPU gathers."""
    return rows.index_select(0, pixels.rows).reshape(pixels.n, -1)


def tap_major(weight):
    """(C_out, C_in, 3, 3) -> (9 * C_in, C_out), rows ordered tap-major, for ``gather_rows(...) @ tap_major(w)``."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t()


def pad_map(x):
    """(C, H, W) -> zero-padded flat map (C, (H + 2) * (W + 2))."""
    return F.pad(x, (1, 1, 1, 1)).reshape(x.shape[0], -1)


def gather_taps(padded, pixels):
    """3x3 neighbourhoods of the active pixels: (C, P) padded map -> (C * 9, N), rows ordered channel-major."""
    c = padded.shape[0]
    return padded[:, pixels.taps.reshape(-1)].reshape(c * 9, pixels.n)


def conv3x3_at(weight, padded, pixels):
    """3x3 convolution (no bias) of a padded map, evaluated only at the active pixels.

    Args:
        weight (Tensor): (C_out, C_in, 3, 3).
        padded (Tensor): (C_in, P) zero-padded flat input map (:func:`pad_map`).
        pixels (PixelSet): where to evaluate.

    Returns:
        Tensor: (C_out, N).
    """
    if pixels.n == 0 or weight.shape[0] == 0 or weight.shape[1] == 0:
        return padded.new_zeros(weight.shape[0], pixels.n)
    return weight.reshape(weight.shape[0], -1) @ gather_taps(padded, pixels)


def scatter_add_at(dense, values, pixels):
    """``dense[:, active pixels] += values`` for a (C, H, W) map and (C, N) values (in place; returns ``dense``)."""
    if pixels.n:
        dense.view(dense.shape[0], -1).index_add_(1, pixels.flat, values)
    return dense


def write_padded(values, pixels):
    """(C, N) values at the active pixels -> zero-padded flat map (C, P) holding them (zeros elsewhere)."""
    out = values.new_zeros(values.shape[0], (pixels.h + 2) * (pixels.w + 2))
    if pixels.n:
        out[:, pixels.padded] = values
    return out
