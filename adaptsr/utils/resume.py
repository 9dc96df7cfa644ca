"""Exact, crash-safe resume of BasicSR training: where the data pipeline stands, which state to resume from.

BasicSR 1.4.2 resumes a run at the start of the epoch it was in (``train_pipeline`` calls ``prefetcher.reset()``),
so a run resumed mid-epoch sees the epoch's first batches again, with other random crops, and ends with other
weights. adaptsr's training states also record (:class:`DataPosition`):

* the random states (Python ``random``, NumPy, torch CPU and CUDA) as they were when the epoch's data iterator was
  made, and the number of batches drawn from it since;
* the random states at the moment of the save.

On resume :class:`ResumablePrefetcher` rebuilds the epoch's iterator under the epoch's random states, draws (and
discards) the batches already trained on, so the sampler, the DataLoader workers (BasicSR seeds them per epoch) and
the augmentations stand where they stood, then restores the random states of the save. A single-process run resumed
from any saved iteration therefore ends with the weights of the uninterrupted run (tested). Under DDP every rank
restores rank 0's record (the batch count is the same on every rank; the random states of the other ranks are not),
so only rank 0 is exact.

:func:`find_resume_state` picks the newest training state that loads and whose ``net_g_<iter>.pth`` loads, warning
about (and skipping) any that does not, e.g. a file truncated by a crash of an older adaptsr or a full disk.
"""
import os.path as osp
import random
import re
import warnings

import numpy as np
import torch


def capture_rng():
    """The random states the training loop and the data pipeline use (Python, NumPy, torch CPU and CUDA)."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state):
    """Restore a :func:`capture_rng` record (the CUDA states only when CUDA is in use here too)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if state.get('cuda') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class DataPosition:
    """Where the training data iterator of this process stands (one per process: :data:`POSITION`).

    Attributes:
        epoch_rng (dict | None): random states when the current epoch's iterator was made.
        batches (int): batches drawn from that iterator.
        pending (dict | None): the record of a resumed state, applied by the next :meth:`ResumablePrefetcher.reset`.
    """

    def __init__(self):
        self.epoch_rng = None
        self.batches = 0
        self.pending = None

    def state_dict(self):
        """The record a training state keeps (None before the first epoch started)."""
        if self.epoch_rng is None:
            return None
        return {'epoch_rng': self.epoch_rng, 'batches': self.batches, 'rng': capture_rng()}


#: this process's data position, updated by :class:`ResumablePrefetcher` and saved in every training state
POSITION = DataPosition()


def resumable_prefetcher(base):
    """A subclass of BasicSR's ``CPUPrefetcher`` (``base``) that counts batches and, after a resume, continues the
    interrupted epoch at the batch where it stopped (see the module docstring)."""

    class ResumablePrefetcher(base):

        def reset(self):
            pending, POSITION.pending = POSITION.pending, None
            if pending is None:
                POSITION.epoch_rng = capture_rng()
                super().reset()
                POSITION.batches = 0
                return
            restore_rng(pending['epoch_rng'])
            POSITION.epoch_rng = pending['epoch_rng']
            super().reset()
            POSITION.batches = 0
            for _ in range(int(pending['batches'])):
                if super().next() is None:
                    break
                POSITION.batches += 1
            restore_rng(pending['rng'])

        def next(self):
            batch = super().next()
            if batch is not None:
                POSITION.batches += 1
            return batch

    ResumablePrefetcher.__name__ = ResumablePrefetcher.__qualname__ = 'ResumablePrefetcher'
    return ResumablePrefetcher


def _readable(path):
    try:
        torch.load(path, map_location='cpu', weights_only=False)
        return None
    except Exception as err:  # any unreadable file: truncated, not a torch file, permissions
        return f'{type(err).__name__}: {err}'


def remove_partial_writes(exp):
    """Delete the temporary files that :func:`adaptsr.utils.atomic.atomic_write` left in ``<exp>/models`` and
    ``<exp>/training_states`` when a run was killed while saving (``.<stem>.<random>.tmp<ext>``; never a finished
    file). Returns the removed paths."""
    import glob
    import os
    removed = []
    for folder in ('models', 'training_states'):
        for path in glob.glob(osp.join(exp, folder, '.*.tmp*')):
            if osp.isfile(path) and re.fullmatch(r'\..+\.[A-Za-z0-9_]+\.tmp(\.\w+)?', osp.basename(path)):
                os.remove(path)
                removed.append(path)
    if removed:
        warnings.warn(f'auto_resume: removed {len(removed)} partial write(s) of an interrupted save: '
                      f'{", ".join(osp.basename(p) for p in removed)}', RuntimeWarning)
    return removed


def find_resume_state(state_dir, models_dir, networks=('g',)):
    """The newest resumable training state of an experiment, skipping unreadable ones with a warning.

    A state ``<iter>.state`` is resumable when it loads and every ``net_<name>_<iter>.pth`` it needs loads.

    Args:
        state_dir (str): ``experiments/<name>/training_states``.
        models_dir (str): ``experiments/<name>/models``.
        networks (tuple[str]): network names whose checkpoints a resume loads (``network_g`` -> ``'g'``).

    Returns:
        tuple[str, dict] | None: path and loaded state, or None when the folder has no ``.state`` file.

    Raises:
        RuntimeError: there are states but none is resumable (each file and its error are named).
    """
    if not osp.isdir(state_dir):
        return None
    import os
    found = []
    for name in os.listdir(state_dir):
        stem, ext = osp.splitext(name)
        if ext == '.state' and stem.isdigit():
            found.append(int(stem))
    if not found:
        return None
    problems = []
    for it in sorted(found, reverse=True):
        path = osp.join(state_dir, f'{it}.state')
        try:
            state = torch.load(path, map_location='cpu', weights_only=False)
        except Exception as err:
            problems.append(f'{path}: {type(err).__name__}: {err}')
            warnings.warn(f'auto_resume: training state {path} cannot be read ({type(err).__name__}: {err}); trying '
                          'the previous one', RuntimeWarning)
            continue
        bad = [(p, e) for p in (osp.join(models_dir, f'net_{n}_{it}.pth') for n in networks)
               for e in [(_readable(p) if osp.isfile(p) else 'missing')] if e]
        if bad:
            problems.extend(f'{p}: {e}' for p, e in bad)
            warnings.warn(f'auto_resume: {path} needs {", ".join(p for p, _ in bad)}, which cannot be read '
                          f'({bad[0][1]}); trying the previous state', RuntimeWarning)
            continue
        return path, state
    raise RuntimeError(f'auto_resume: no training state in {state_dir} can be resumed:\n  ' + '\n  '.join(problems))
