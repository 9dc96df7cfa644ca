"""CABM's edge-to-bit mapping: the per-patch edge score and the versioned lookup table built from a CADyQ model.

Source: S. Tian et al., "CABM: Content-Aware Bit Mapping for Single Image Super-Resolution Network with Large
Input", CVPR 2023 (github.com/Sheldon04/CABM-pytorch); written from the paper, not the official code.

Table file (JSON, ``format: adaptsr-cabm-lut``, ``version: 1``)::

    {"format": "adaptsr-cabm-lut", "version": 1,
     "meta": {"bits": [4, 6, 8], "num_selectors": 32, "edge_score": "intended" | "bug_compatible",
              "tile_size": 96, "tile_step": 94, "source": "...", "model_sha1": "...", "images": 100, "tiles": N},
     "table": {"12.34": [{"bit_config": [0, 2, ...], "FAB": 5.75}, ...], ...}}

Keys are edge scores rounded to 2 decimals, ascending; each list holds unique bit configurations (indices into
``bits``, selector order ``block0.sel1, block0.sel2, ...``), ascending FAB.
"""
import json
import math

import cv2
import numpy as np
import torch

from adaptsr.core.data_util import iter_images
from adaptsr.core.tiling import tile_boxes
from adaptsr.utils.atomic import atomic_write

FORMAT, VERSION = 'adaptsr-cabm-lut', 1


def edge_score(lq, bug_compatible=False):
    """Mean saturated |Laplacian| of the gray uint8 LR patch (OpenCV aperture 3, i.e. kernel
    ``[[2, 0, 2], [0, -8, 0], [2, 0, 2]]``, reflect-101 border).

    Args:
        lq (Tensor | ndarray): one RGB patch, tensor (3, H, W) or (1, 3, H, W) in [0, 1], or uint8 (H, W, 3) RGB.
        bug_compatible (bool): reproduce the released code, which clamps [0, 255] values to [0, 1] before scaling,
            so the Laplacian sees 0 where a channel is 0 and 255 elsewhere (score 0.0 for a patch without zeros).

    Returns:
        float: the score (0-255 scale). The input is never modified.
    """
    if isinstance(lq, torch.Tensor):
        t = lq.detach().cpu()
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise ValueError(f'edge_score takes one patch, got a batch of {t.shape[0]}')
            t = t[0]
        img = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    else:
        img = np.asarray(lq)
        if img.dtype != np.uint8 or img.ndim != 3:
            raise ValueError(f'edge_score expects a uint8 (H, W, 3) array, got {img.dtype} {img.shape}')
    if bug_compatible:
        img = np.where(img > 0, 255, 0).astype(np.uint8)
    gray = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(gray, cv2.CV_16S, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    return float(cv2.convertScaleAbs(lap).mean())


def score_key(score):
    """Table key of a score: rounded to 2 decimals, as the official ``str(round(s, 2))`` ("0.0", "12.34")."""
    return str(round(float(score), 2))


class EdgeBitTable:
    """Edge score -> per-layer bit configuration (the CABM paper, github.com/Sheldon04/CABM-pytorch).

    Args:
        bits (tuple): candidate bit-widths (4, 6, 8). num_selectors (int): 32. meta (dict): metadata stored in the file.
    """

    def __init__(self, bits=(4, 6, 8), num_selectors=32, meta=None):
        self.bits = tuple(int(b) for b in bits)
        self.num_selectors = int(num_selectors)
        self.meta = dict(meta or {})
        self.table = {}
        self._dense = None

    # building ----------------------------------------------------------------------------------------------------
    def add(self, score, flags):
        """Record a tile: its edge score and its CADyQ bit indices (``num_selectors`` ints in {0, 1, 2})."""
        cfg = [int(f) for f in flags]
        if len(cfg) != self.num_selectors or not all(0 <= f < len(self.bits) for f in cfg):
            raise ValueError(f'a bit configuration needs {self.num_selectors} indices in [0, {len(self.bits)}), '
                             f'got {cfg}')
        entries = self.table.setdefault(score_key(score), [])
        if all(e['bit_config'] != cfg for e in entries):
            entries.append({'bit_config': cfg, 'FAB': sum(self.bits[f] for f in cfg) / self.num_selectors})
        self._dense = None

    def finalize(self):
        """Sort keys ascending and every list by FAB ascending (the file's order)."""
        self.table = {k: sorted(v, key=lambda e: e['FAB']) for k, v in sorted(self.table.items(),
                                                                              key=lambda kv: float(kv[0]))}
        self._dense = None
        return self

    # file --------------------------------------------------------------------------------------------------------
    def save(self, path, overwrite=False):
        """Write the versioned JSON. Raises FileExistsError unless ``overwrite`` (a table is never replaced
        silently)."""
        import os
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f'{path} exists; refusing to overwrite a lookup table')
        self.finalize()
        meta = dict(self.meta, bits=list(self.bits), num_selectors=self.num_selectors)
        with atomic_write(path) as tmp, open(tmp, 'w') as f:
            json.dump({'format': FORMAT, 'version': VERSION, 'meta': meta, 'table': self.table}, f)

    @classmethod
    def load(cls, path):
        """Read a table file.

        Raises:
            ValueError: unreadable, not JSON or not an adaptsr CABM table, an unknown version, or a malformed entry
                (naming the file and the key).
        """
        try:
            with open(path) as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f'{path}: not an {FORMAT} file (not JSON: {err})') from None
        except OSError as err:
            raise ValueError(f'{path}: the table cannot be read ({err.strerror})') from None
        found = data.get('format') if isinstance(data, dict) else None
        if found != FORMAT:
            raise ValueError(f'{path}: not an {FORMAT} file (format = {found!r})')
        if data.get('version') != VERSION:
            raise ValueError(f'{path}: table version {data.get("version")!r}, this code reads version {VERSION}')
        meta = data.get('meta') or {}
        out = cls(meta.get('bits', (4, 6, 8)), meta.get('num_selectors', 32), meta)
        for key, entries in data['table'].items():
            for e in entries:
                if len(e.get('bit_config', [])) != out.num_selectors:
                    raise ValueError(f'{path}: entry of key {key!r} has {len(e.get("bit_config", []))} bits, '
                                     f'expected {out.num_selectors}')
            out.table[key] = entries
        return out.finalize()

    # lookup ------------------------------------------------------------------------------------------------------
    def _valid_bins(self, calibration):
        return sorted((float(k), k) for k, v in self.table.items() if v and v[0]['FAB'] < calibration)

    def lookup(self, score, calibration=100.0, select_bit=0, generator=None):
        """Bit configuration for a score: the nearest populated bin at or below the score whose lowest FAB is below
        ``calibration`` (the official down-walk, made terminating); if none is below, the nearest above; if the
        table has no bin under ``calibration`` at all, every selector at the highest bit-width.

        Args:
            score (float): edge score. calibration (float): FAB ceiling (6.0 in training, 100 = no filter at test).
            select_bit (int): 0 = lowest FAB entry, 1 = second lowest (or the lowest when alone), 2 = a random entry.

        Returns:
            list[int]: ``num_selectors`` indices into ``bits``.
        """
        valid = self._valid_bins(calibration)
        if not valid:
            return [len(self.bits) - 1] * self.num_selectors
        s = round(float(score), 2)
        below = [kv for kv in valid if kv[0] <= s + 1e-9]
        key = below[-1][1] if below else valid[0][1]
        entries = self.table[key]
        if select_bit == 0:
            entry = entries[0]
        elif select_bit == 1:
            entry = entries[min(1, len(entries) - 1)]
        elif select_bit == 2:
            idx = int(torch.randint(len(entries), (1,), generator=generator))
            entry = entries[idx]
        else:
            raise ValueError(f'select_bit must be 0, 1 or 2, got {select_bit}')
        return list(entry['bit_config'])

    def lookup_batch(self, scores, calibration=100.0, select_bit=0):
        """(N,) scores -> (N, num_selectors) long tensor of bit indices."""
        return torch.tensor([self.lookup(s, calibration, select_bit) for s in scores], dtype=torch.long)

    def __len__(self):
        return len(self.table)

    def mean_fab(self):
        """Mean of every entry's FAB (a summary for logs); nan for an empty table."""
        fabs = [e['FAB'] for v in self.table.values() for e in v]
        return sum(fabs) / len(fabs) if fabs else math.nan


@torch.no_grad()
def build_table(net, lr_root, tile_size=96, step=94, bug_compatible=False, max_images=None, min_tiles=100):
    """Step 4 of CABM: run a CADyQ network tile by tile over the LR images of ``lr_root`` and record, per tile, its
    edge score and the bits its selectors chose (the CABM paper, github.com/Sheldon04/CABM-pytorch).

    Args:
        net (CABMEDSR | CABMNet): the trained CADyQ network (run in ``cadyq`` mode, eval, batch 1; its mode is
            restored).
        lr_root (str): folder of LR images, or a BasicSR LMDB of them (e.g. the 291 set's LR x4 sub-images); DIV2K
            valid LR x4 in the paper.
        tile_size (int), step (int): LR tiles (96, 94); the last tile of a row/column is shifted to the border.
        bug_compatible (bool): the released code's edge score (see :func:`edge_score`).
        max_images (int, optional): only the first images (sorted by name).
        min_tiles (int): fewest tiles a table may be built from (with fewer, most edge scores would map to the bits
            of a handful of patches).

    Returns:
        EdgeBitTable: finalised, with metadata (score flag, tiles, step, source, images, tiles, model digest).

    Raises:
        FileNotFoundError: no image in ``lr_root``. ValueError: an image that cannot be read, an image smaller than
        3x3 pixels (no edge score), or fewer than ``min_tiles`` tiles (the counts are named).
    """
    import hashlib
    import os
    from itertools import islice

    images = iter_images(lr_root, 'train.cabm.lut_dataroot')
    if max_images:
        images = islice(images, max_images)
    digest = hashlib.sha1()
    for v in net.state_dict().values():
        digest.update(v.detach().cpu().numpy().tobytes())
    table = EdgeBitTable(net.bits, net.num_selectors,
                         {'edge_score': 'bug_compatible' if bug_compatible else 'intended', 'tile_size': tile_size,
                          'tile_step': step, 'source': os.path.abspath(lr_root), 'model_sha1': digest.hexdigest(),
                          'images': 0})
    mode, was_training = net.mode, net.training
    net.set_mode('cadyq')
    net.eval()
    tiles = 0
    try:
        device = next(net.parameters()).device
        for _, x in images:
            x = x.to(device)
            table.meta['images'] += 1
            rgb = np.ascontiguousarray((x[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))
            if min(x.shape[2:]) < 3:
                raise ValueError(f'{lr_root}: image {table.meta["images"]} is {x.shape[3]}x{x.shape[2]} pixels; the '
                                 'edge score and the bit selectors need tiles of at least 3x3')
            for (t, l, b, r) in tile_boxes(x.shape[2], x.shape[3], tile_size, tile_size - step):
                patch = x[..., t:b, l:r]
                net(patch)
                table.add(edge_score(rgb[t:b, l:r], bug_compatible), net.last_stats['flags'][0].tolist())
                tiles += 1
    finally:
        net.set_mode(mode)
        net.train(was_training)
    table.meta['tiles'] = tiles
    if tiles < min_tiles:
        raise ValueError(f'{lr_root}: {tiles} tile(s) of {tile_size} LR pixels from {table.meta["images"]} image(s) '
                         f'({tiles / max(len(table), 1):.1f} per score bin, {len(table)} bins); a table needs at least '
                         f'{min_tiles} tiles (train.cabm.lut_min_tiles): use more or larger LR images')
    return table.finalize()
