"""Split an LR image into overlapping tiles and merge the SR tiles by overlap averaging.

The one place where adaptsr tiles images: APE and CABM decide per tile, and any model can bound its memory on
2K-8K inputs with ``val.tile_size`` / ``val.tile_overlap``.
"""


def tile_boxes(height, width, tile_size, overlap=0):
    """Top-left-anchored tile boxes covering an image; the last tile in each axis is shifted to end at the border.

    Args:
        height (int), width (int): LR size in pixels.
        tile_size (int): tile side in LR pixels; an image smaller than a tile gives one tile of the image size.
        overlap (int): overlap between neighbouring tiles in LR pixels (0 <= overlap < tile_size).

    Returns:
        list[tuple[int, int, int, int]]: boxes (top, left, bottom, right), bottom/right exclusive.

    Raises:
        ValueError: non-positive tile size, or overlap outside [0, tile_size).
    """
    if tile_size is None or int(tile_size) <= 0:
        raise ValueError(f'tile_size must be a positive integer, got {tile_size!r}')
    if not 0 <= overlap < tile_size:
        raise ValueError(f'tile_overlap must be in [0, tile_size={tile_size}), got {overlap!r}')

    def starts(n):
        t = min(tile_size, n)
        stride = max(1, t - overlap)
        pos = list(range(0, max(n - t, 0) + 1, stride))
        if pos[-1] + t < n:
            pos.append(n - t)
        return [(p, p + t) for p in pos]

    return [(t, l, b, r) for (t, b) in starts(height) for (l, r) in starts(width)]


def tiled_forward(fn, lq, scale, tile_size, overlap=0):
    """Run ``fn`` tile by tile on ``lq`` and merge the outputs by overlap averaging.

    Args:
        fn (callable): maps an LR tile (N, C, th, tw) to an SR tile (N, C_out, th*scale, tw*scale).
        lq (Tensor): LR image (N, C, H, W).
        scale (int): upscaling factor.
        tile_size (int), overlap (int): see :func:`tile_boxes`.

    Returns:
        Tensor: SR image (N, C_out, H*scale, W*scale).
    """
    n, _, h, w = lq.shape
    out = None
    weight = None
    for (t, l, b, r) in tile_boxes(h, w, tile_size, overlap):
        sr = fn(lq[:, :, t:b, l:r])
        if out is None:
            out = sr.new_zeros(n, sr.shape[1], h * scale, w * scale)
            weight = sr.new_zeros(1, 1, h * scale, w * scale)
        out[:, :, t * scale:b * scale, l * scale:r * scale] += sr
        weight[:, :, t * scale:b * scale, l * scale:r * scale] += 1
    return out / weight


def patch_grid_crop_size(n, patch=32, step=28):
    """Size kept by the "patch-divisible" crop of PCSR's ``--crop`` protocol (also ClassSR/ARM's):
    ``((n - patch + step) // step - 1) * step + patch``; ``n`` itself when ``n < patch``."""
    if n < patch:
        return n
    return ((n - patch + step) // step - 1) * step + patch


__all__ = ['tile_boxes', 'tiled_forward', 'patch_grid_crop_size']
