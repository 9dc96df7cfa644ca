"""Atomic file writes: a result is either the previous file or the complete new one, never a truncated mix."""
import os
import os.path as osp
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_write(path):
    """Write ``path`` through a temporary file beside it, renamed over ``path`` when the block ends without error.

    The temporary name keeps the extension (``.<stem>.<random>.tmp<ext>``), so writers that infer the format from it
    (matplotlib) work. The file gets the permissions a plain ``open(path, 'w')`` would give (umask applied). On an
    exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path (str): the final file; its directory is created if needed.

    Yields:
        str: the temporary path to write.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, ext = osp.splitext(osp.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{stem}.', suffix=f'.tmp{ext}', dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # the permissions of a plainly created file (mkstemp's are 0600)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj, path):
    """``torch.save(obj, path)`` through :func:`atomic_write`, flushed to disk before the rename: a process killed
    while saving leaves the previous ``path`` (or none), never a truncated checkpoint or training state.

    Args:
        obj: anything ``torch.save`` takes (a checkpoint dict, a training state).
        path (str): the final file.
    """
    import torch
    with atomic_write(path) as tmp:
        with open(tmp, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
    return path
