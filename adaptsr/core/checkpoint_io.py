"""Checkpoint files: reading and writing ``.pth`` (torch) and ``.safetensors`` files, and the BasicSR checkpoint the
converters of each method return.

Each converter returns a BasicSR checkpoint dict ``{'params': sd, 'params_ema': sd, 'meta': {...}}``; ``meta``
records the method, arch, scale and source file, and adaptsr models refuse a checkpoint whose scale differs
from the YAML's.
"""
import json
import os.path as osp

import safetensors
import safetensors.torch
import torch

from adaptsr.core.errors import CheckpointError  # noqa: F401  (importable from here too)
from adaptsr.utils.atomic import atomic_torch_save, atomic_write

#: the ``__metadata__`` key of an adaptsr ``.safetensors`` file that holds the checkpoint's ``meta`` (JSON)
SAFETENSORS_META = 'adaptsr_meta'


def is_safetensors(path):
    """Whether ``path`` names a safetensors file (by its extension, as spandrel and chaiNNer tell them apart)."""
    return str(path).lower().endswith('.safetensors')


def _load_safetensors(path):
    """A ``.safetensors`` file as a checkpoint: ``{'params': sd, 'meta': {...}}`` for one adaptsr wrote (its ``meta``
    kept in the header), the bare state_dict otherwise (the usual layout of SR model files)."""
    sd = safetensors.torch.load_file(path, device='cpu')
    with safetensors.safe_open(path, framework='pt') as f:
        header = f.metadata() or {}
    if SAFETENSORS_META not in header:
        return sd
    try:
        meta = json.loads(header[SAFETENSORS_META])
    except ValueError as err:
        raise CheckpointError(f'checkpoint {path}: the {SAFETENSORS_META!r} header is not JSON ({err})') from None
    return {'params': sd, 'meta': meta}


def load_checkpoint(path):
    """``torch.load(path, map_location='cpu', weights_only=True)``, or a ``.safetensors`` file (:func:`save_checkpoint`
    writes them; a foreign one is its bare state_dict), with errors that name the file.

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
        return _load_safetensors(path) if is_safetensors(path) else torch.load(path, map_location='cpu',
                                                                                weights_only=True)
    except CheckpointError:
        raise
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

    A ``.safetensors`` ``path`` gets one network's state_dict (``params_ema`` where present, else ``params``; the flat
    layout spandrel and chaiNNer read), with ``meta`` (method, arch, scale, source) as JSON in the header, so that
    :func:`load_checkpoint` returns the same checkpoint less the other weights; anything else is written by
    ``torch.save``.

    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``.
        ValueError: a tensor holds NaN/Inf (named).
    """
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path!r} exists; choose another --output or pass --overwrite')
    check_finite(ckpt, f'refusing to save {path}')
    if not is_safetensors(path):
        atomic_torch_save(ckpt, path)
        return path
    key = 'params_ema' if isinstance(ckpt.get('params_ema'), dict) else 'params'
    if not isinstance(ckpt.get(key), dict):
        raise ValueError(f'{path}: a safetensors file holds one state_dict; the checkpoint has no params')
    # safetensors refuses tensors that share memory (tied or viewed weights): each is written as its own copy
    sd = {k: v.detach().contiguous().clone() for k, v in ckpt[key].items()}
    header = {'format': 'pt', SAFETENSORS_META: json.dumps(ckpt.get('meta') or {}, default=str)}
    with atomic_write(path) as tmp:
        safetensors.torch.save_file(sd, tmp, metadata=header)
    return path


def basicsr_checkpoint(sd, method, arch, scale, source):
    sd = {k: v.clone() for k, v in sd.items()}
    return {'params': sd, 'params_ema': sd, 'meta': {'method': method, 'arch': arch, 'scale': scale,
                                                      'source': osp.basename(str(source))}}
