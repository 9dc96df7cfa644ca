"""Official checkpoint -> adaptsr (BasicSR) checkpoint converters, one module per method.

Each converter returns a BasicSR checkpoint dict ``{'params': sd, 'params_ema': sd, 'meta': {...}}``; ``meta``
records the method, arch, scale and source file, and adaptsr models refuse a checkpoint whose scale differs
from the YAML's.
"""
import os.path as osp

import torch


def load_checkpoint(path):
    """``torch.load(path, map_location='cpu', weights_only=True)`` with a clear error for a missing file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    return torch.load(path, map_location='cpu', weights_only=True)


def save_checkpoint(ckpt, path, overwrite=False):
    """Save a converted checkpoint; refuses to overwrite an existing file unless ``overwrite``."""
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path!r} exists; choose another --output or pass --overwrite')
    torch.save(ckpt, path)
    return path


def basicsr_checkpoint(sd, method, arch, scale, source):
    sd = {k: v.clone() for k, v in sd.items()}
    return {'params': sd, 'params_ema': sd, 'meta': {'method': method, 'arch': arch, 'scale': scale,
                                                      'source': osp.basename(str(source))}}
