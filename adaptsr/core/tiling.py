"""Split an LR image into overlapping tiles and merge the SR tiles by overlap averaging.

The one place where adaptsr tiles images: APE and CABM decide per tile, and any model can bound its memory on
2K-8K inputs with ``val.tile_size`` / ``val.tile_overlap``.
"""
import torch


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


def tiled_forward(fn, lq, scale, tile_size, overlap=0, tile_batch=1, boxes_out=None, merge='average'):
    """Run ``fn`` tile by tile on ``lq`` and merge the outputs by overlap averaging.

    Args:
        fn (callable): maps LR tiles (B, C, th, tw) to SR tiles (B, C_out, th*scale, tw*scale).
        lq (Tensor): LR image (N, C, H, W); N must be 1 when ``tile_batch > 1``.
        scale (int): upscaling factor.
        tile_size (int), overlap (int): see :func:`tile_boxes`.
        tile_batch (int): tiles of equal size stacked into one call (e.g. PCSR's patch mode: 32x32 tiles, overlap 4,
            96 per batch, so that its ADM clusters the batch jointly).
        boxes_out (list, optional): receives each call's tile boxes (a list of (top, left, bottom, right) in LR
            pixels per call of ``fn``, in call order), e.g. to map per-tile decisions back onto the image.
        merge (str): ``'average'``: every tile counts over its whole area (the methods' own protocols, e.g. APE's
            48-pixel patches); ``'crop'``: each tile counts only in its core, the box less half the overlap on every
            side inside the image (:func:`tile_cores`), so that the pixels near a tile's border, which miss context,
            are taken from the neighbour; a network whose receptive radius is at most half the overlap then gives the
            whole-image result.

    Returns:
        Tensor: SR image (N, C_out, H*scale, W*scale).

    Raises:
        ValueError: ``tile_batch > 1`` with more than one image, or an unknown ``merge``.
    """
    if merge not in ('average', 'crop'):
        raise ValueError(f"tile merge must be 'average' or 'crop', got {merge!r}")
    n, _, h, w = lq.shape
    if tile_batch > 1 and n != 1:
        raise ValueError(f'tile_batch > 1 needs a single image per call, got a batch of {n}')
    boxes = tile_boxes(h, w, tile_size, overlap)
    groups = {}
    for box in boxes:
        groups.setdefault((box[2] - box[0], box[3] - box[1]), []).append(box)
    out = None
    weight = None
    for same_size in groups.values():
        for start in range(0, len(same_size), max(1, tile_batch)):
            chunk = same_size[start:start + max(1, tile_batch)]
            if boxes_out is not None:
                boxes_out.append(list(chunk))
            sr = fn(torch.cat([lq[:, :, t:b, l:r] for (t, l, b, r) in chunk], dim=0))
            if out is None:
                out = sr.new_zeros(n, sr.shape[1], h * scale, w * scale)
                weight = sr.new_zeros(1, 1, h * scale, w * scale)
            for i, box in enumerate(chunk):
                t, l, b, r = box
                ct, cl, cb, cr = tile_core(box, h, w, overlap) if merge == 'crop' else box
                part = sr[i * n:(i + 1) * n, :, (ct - t) * scale:(cb - t) * scale, (cl - l) * scale:(cr - l) * scale]
                out[:, :, ct * scale:cb * scale, cl * scale:cr * scale] += part
                weight[:, :, ct * scale:cb * scale, cl * scale:cr * scale] += 1
    return out.div_(weight)  # in place: a 2K-8K output is not held twice


def tile_core(box, height, width, overlap):
    """The part of a tile box that a ``'crop'`` merge keeps: the box less ``overlap // 2`` on each side that is not
    the image's border. The cores of :func:`tile_boxes`' tiles cover the image (where the last tile is shifted, its
    core overlaps its neighbour's and the two are averaged)."""
    t, l, b, r = box
    m = overlap // 2
    return (t + m if t > 0 else t, l + m if l > 0 else l, b - (overlap - m) if b < height else b,
            r - (overlap - m) if r < width else r)


def patch_grid_crop_size(n, patch=32, step=28):
    """Size kept by the "patch-divisible" crop of PCSR's ``--crop`` protocol (also ClassSR/ARM's):
    ``((n - patch + step) // step - 1) * step + patch``; ``n`` itself when ``n < patch``."""
    if n < patch:
        return n
    return ((n - patch + step) // step - 1) * step + patch


#: ``val.crop_mode`` name -> function (h, w) -> kept (h, w) of the LR image; methods add their own protocols with
#: :func:`register_crop_mode`
CROP_MODES = {'none': lambda h, w: (h, w), 'even': lambda h, w: (h - h % 2, w - w % 2)}


def register_crop_mode(name, patch, step):
    """Declare a test crop protocol: ``val.crop_mode: <name>`` keeps the LR size that a grid of ``patch``-pixel
    patches at stride ``step`` covers (:func:`patch_grid_crop_size`), and the matching HR."""
    CROP_MODES[name] = lambda h, w: (patch_grid_crop_size(h, patch, step), patch_grid_crop_size(w, patch, step))


def crop_size(mode, height, width):
    """The LR size ``val.crop_mode`` keeps of a (height, width) input.

    Raises:
        ValueError: an unknown mode (the known ones are listed).
    """
    if mode not in CROP_MODES:
        raise ValueError(f'val.crop_mode must be one of {sorted(CROP_MODES)}, got {mode!r}')
    return CROP_MODES[mode](height, width)


__all__ = ['tile_boxes', 'tile_core', 'tiled_forward', 'patch_grid_crop_size', 'register_crop_mode', 'crop_size']
