"""Pictures of adaptive routing: a per-pixel value drawn over the SR image, with a caption bar that names the scale.

Used by the models' :meth:`~adaptsr.core.adaptive_model.AdaptiveSRModel.routing_maps` (PCSR's classification,
APE's exit depth, CABM's bits per tile) for ``adaptsr-infer --maps`` and ``val.save_img``.
"""
import cv2
import numpy as np


def _caption(img, text):
    """``img`` with a black 22-pixel bar below it holding ``text`` (white; shrunk to fit the width)."""
    bar = np.zeros((22, img.shape[1], 3), np.uint8)
    scale = 0.45
    while scale > 0.2 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > img.shape[1] - 8:
        scale -= 0.05
    cv2.putText(bar, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([img, bar], axis=0)


def upscale_nearest(values, size):
    """A per-LR-pixel (h, w) array resized to ``size`` = (H, W) by nearest neighbour (each LR pixel a block)."""
    if values.shape == tuple(size):
        return values
    return cv2.resize(values.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def overlay_values(sr_img, values, low, high, caption, colormap=cv2.COLORMAP_VIRIDIS, alpha=0.5):
    """Colour-coded ``values`` blended over a grey copy of the SR image.

    Args:
        sr_img (ndarray): SR image (H, W, 3) BGR uint8 (``basicsr.utils.tensor2img``), or None for the map alone.
        values (ndarray): (H, W) or (h, w) float (nearest-upscaled to the SR size); NaN = not covered (grey).
        low (float), high (float): the values drawn as the colormap's ends.
        caption (str): what the colours mean, written under the picture.
        colormap (int): an OpenCV colormap. alpha (float): weight of the colours, in [0, 1].

    Returns:
        ndarray: (H + 22, W, 3) BGR uint8.
    """
    size = sr_img.shape[:2] if sr_img is not None else values.shape
    v = upscale_nearest(np.asarray(values, np.float32), size)
    norm = np.clip((np.nan_to_num(v, nan=low) - low) / max(high - low, 1e-12), 0, 1)
    colors = cv2.applyColorMap((norm * 255).round().astype(np.uint8), colormap)
    if sr_img is None:
        out = colors
    else:
        grey = cv2.cvtColor(cv2.cvtColor(sr_img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        out = cv2.addWeighted(grey, 1 - alpha, colors, alpha, 0)
    out[np.isnan(v)] = 128
    return _caption(out, caption)


def overlay_mask(sr_img, mask, caption, color=(0, 0, 255), alpha=0.55):
    """Pixels where ``mask`` holds tinted with ``color`` (BGR) over a grey copy of the SR image, the rest grey (as
    the PCSR demo's coloured output, github.com/3587jjh/PCSR).

    Args:
        sr_img (ndarray): (H, W, 3) BGR uint8. mask (ndarray): (H, W) bool. caption (str): written under it.

    Returns:
        ndarray: (H + 22, W, 3) BGR uint8.
    """
    grey = cv2.cvtColor(cv2.cvtColor(sr_img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR).astype(np.float32)
    out = grey.copy()
    tint = np.array(color, np.float32)
    out[mask] = (1 - alpha) * grey[mask] + alpha * tint
    return _caption(out.round().astype(np.uint8), caption)


def box_values(shape, boxes_per_call, values_per_call, scale=1):
    """Mean of per-tile values over the pixels each tile covers.

    Args:
        shape (tuple): (h, w) LR size. boxes_per_call (list[list[tuple]]): each call's tile boxes (top, left,
            bottom, right) in LR pixels (:func:`adaptsr.core.tiling.tiled_forward`'s ``boxes_out``).
        values_per_call (list[sequence[float]]): one value per tile, in the same order. scale (int): output pixels
            per LR pixel.

    Returns:
        ndarray: (h * scale, w * scale) float32; NaN where no tile lies.
    """
    h, w = shape
    total = np.zeros((h * scale, w * scale), np.float64)
    count = np.zeros_like(total)
    for boxes, values in zip(boxes_per_call, values_per_call):
        for (t, l, b, r), value in zip(boxes, values):
            total[t * scale:b * scale, l * scale:r * scale] += float(value)
            count[t * scale:b * scale, l * scale:r * scale] += 1
    with np.errstate(invalid='ignore'):
        return (total / count).astype(np.float32)


__all__ = ['overlay_values', 'overlay_mask', 'box_values', 'upscale_nearest']
