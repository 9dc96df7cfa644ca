"""Official checkpoint -> adaptsr (BasicSR) checkpoint converters, one module per method.

Each converter returns a BasicSR checkpoint dict ``{'params': sd, 'params_ema': sd, 'meta': {...}}``; ``meta``
records the method, arch, scale and source file, and adaptsr models refuse a checkpoint whose scale differs
from the YAML's.
"""
import os.path as osp

import torch

from adaptsr.core.errors import CheckpointError  # noqa: F401  (importable from here too)
from adaptsr.utils.atomic import atomic_torch_save


def load_checkpoint(path):
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors that name the file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a folder, or a file that is not a readable torch checkpoint (truncated, empty, another
            format).
    """
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint {path!r} is a folder; name the .pth file in it (e.g. '
                              f'{osp.join(path, "net_g_latest.pth")})')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        if osp.getsize(path) == 0:
            raise CheckpointError(f'checkpoint {path}: the file is empty') from err
        raise CheckpointError(f'checkpoint {path} cannot be read (truncated or not a torch file?): '
                              f'{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}') from err


def find_nonfinite(tree, prefix=''):
    """Names of the floating-point tensors in ``tree`` (a tensor, or nested dicts/lists of them) that hold a NaN or
    an infinity, e.g. ``['params.head.0.weight']``."""
    if torch.is_tensor(tree):
        return [prefix or '<tensor>'] if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    bad = []
    for key, value in items:
        bad.extend(find_nonfinite(value, f'{prefix}.{key}' if prefix else str(key)))
    return bad


def check_finite(tree, what):
    """Raise CheckpointError (a ValueError) naming ``what`` and up to 5 tensors of ``tree`` that hold NaN/Inf (a
    diverged training)."""
    bad = find_nonfinite(tree)
    if bad:
        raise CheckpointError(f'{what}: {len(bad)} tensor(s) hold NaN or Inf ({", ".join(bad[:5])}'
                              f'{", ..." if len(bad) > 5 else ""}); the training that wrote it diverged')


def save_checkpoint(ckpt, path, overwrite=False):
    """Save a converted checkpoint (atomically); refuses to overwrite an existing file unless ``overwrite``, and
    refuses a checkpoint with NaN/Inf tensors.

    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``.
        ValueError: a tensor holds NaN/Inf (named).
    """
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path!r} exists; choose another --output or pass --overwrite')
    check_finite(ckpt, f'refusing to save {path}')
    atomic_torch_save(ckpt, path)
    return path


def basicsr_checkpoint(sd, method, arch, scale, source):
    sd = {k: v.clone() for k, v in sd.items()}
    return {'params': sd, 'params_ema': sd, 'meta': {'method': method, 'arch': arch, 'scale': scale,
                                                      'source': osp.basename(str(source))}}
