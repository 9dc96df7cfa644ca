"""Checks shared by adaptsr datasets and the pipeline patches (not a ``*_dataset.py`` module)."""
import os.path as osp


def check_dataroot(opt, key):
    """The dataset path ``opt[key]``, or an error naming the dataset, the key and the path.

    Raises:
        KeyError: the key is absent. FileNotFoundError: the path does not exist.
    """
    path = opt.get(key)
    if path is None:
        raise KeyError(f"dataset {opt.get('name', '?')!r}: option {key!r} is required")
    if not osp.exists(path):
        raise FileNotFoundError(f"dataset {opt.get('name', '?')!r}: {key} = {path!r} does not exist "
                                '(see datasets/README.md for the expected layouts)')
    return path


def check_dataset_paths(opt):
    """Check every ``dataroot_*`` / ``meta_info_file`` entry of one dataset's options."""
    for key in opt:
        if (key.startswith('dataroot') or key == 'meta_info_file') and opt[key] is not None:
            check_dataroot(opt, key)
