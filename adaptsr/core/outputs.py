"""Output plans: every file a command will write, checked before it writes the first one.

A command that writes files (``adaptsr-infer``, ``adaptsr-export``, ``adaptsr-bench``, ``adaptsr-convert``, the data
preparation) lists its outputs first, with what produces each, and :func:`check_plan` refuses the plan as a whole,
naming the culprit, when

* two outputs of the run are the same file (e.g. the SR image of ``photo_classes.png`` and the map of ``photo.png``,
  or ``photo.png`` and ``photo.jpg`` both written as ``photo.png``);
* an output is one of the run's inputs (refused even with ``--overwrite``: an input is never replaced by a result);
* an output exists and ``--overwrite`` is not given (the message says so when the existing file is a user's input);
* an output's folder cannot be made or written (a file in its place, a read-only parent).

Nothing is written when the plan is refused.
"""
import os
import os.path as osp

from adaptsr.core.errors import OutputPlanError  # noqa: F401  (importable from here too)


def _key(path):
    return osp.normcase(osp.realpath(path))


def _writable_folder_error(folder):
    """Why files cannot be written in ``folder`` (created if needed), or None."""
    probe = osp.abspath(folder)
    while not osp.exists(probe):
        parent = osp.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not osp.isdir(probe):
        return f'{probe} is a file, so the folder {folder} cannot be made'
    if not os.access(probe, os.W_OK | os.X_OK):
        what = 'the output folder' if probe == osp.abspath(folder) else f'the parent of the output folder {folder}'
        return f'{probe} ({what}) is not writable'
    return None


def check_plan(outputs, inputs=(), overwrite=False, flag='--overwrite'):
    """Check a command's planned outputs before anything is written.

    Args:
        outputs (list[tuple[str, str]]): ``(path, what)`` pairs: each file the run writes and what produces it
            (e.g. ``'SR image of photos/a.png'``), in the order they are planned.
        inputs (iterable[str]): files the run reads (images, checkpoints, tables): never an output.
        overwrite (bool): existing outputs may be replaced (an input never).
        flag (str): the flag that allows it, named in the message.

    Raises:
        OutputPlanError: the first collision, input, unwritable folder or (without ``overwrite``) existing files,
            naming the file(s) and what would have written them.
    """
    seen = {}
    input_keys = {_key(p): p for p in inputs}
    for path, what in outputs:
        key = _key(path)
        if key in seen:
            raise OutputPlanError(f'{path}: both the {seen[key]} and the {what} would be written there (output '
                                  'names must be unique within one run: rename an input, or choose other outputs)')
        seen[key] = what
        if key in input_keys:
            raise OutputPlanError(f'{path}: the {what} would replace the input {input_keys[key]} (refused even with '
                                  f'{flag}); choose another output folder or name')
        if osp.isdir(path):
            raise OutputPlanError(f'{path}: the {what} would go there, but it is a folder')
    for folder in dict.fromkeys(osp.dirname(osp.abspath(p)) for p, _ in outputs):
        err = _writable_folder_error(folder)
        if err:
            raise OutputPlanError(f'cannot write the outputs: {err}')
    existing = [p for p, _ in outputs if osp.lexists(p)]
    if existing and not overwrite:
        shown = ', '.join(existing[:3]) + (f', ... ({len(existing)} in all)' if len(existing) > 3 else '')
        raise OutputPlanError(f'{shown}: already exist{"s" if len(existing) == 1 else ""}; pass {flag} to replace '
                              f'{"it" if len(existing) == 1 else "them"}, or choose another output')
