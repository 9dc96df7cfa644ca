"""The console commands a method declares in its room (``COMMANDS`` of ``adaptsr/methods/<m>/declarations.py``:
``name -> module`` of that folder), run by name, e.g. ``adaptsr-cabm-table``.

``--help`` loads the command's module file alone (by path: neither the method's package, which registers its classes
and imports torch, nor torch itself is imported), so the help prints in well under a second; any other call imports
the module normally and runs its ``main()``.
"""
import importlib
import importlib.util
import os.path as osp
import sys

from adaptsr.core.model_flags import room_commands, room_declarations


def find_command(name):
    """``(room, module name, module file)`` of console command ``name``.

    Raises:
        SystemExit: no room declares ``name`` (the declared commands are listed).
    """
    declared = room_commands()
    if name not in declared:
        sys.exit(f'{name}: not a command of any method (declared: {", ".join(sorted(declared)) or "none"})')
    room, target = declared[name]
    return room, target, osp.join(osp.dirname(room_declarations()[room].__file__), target + '.py')


def main(argv=None, name=None):
    """Run the room command ``name`` (default: the name it was called by, ``sys.argv[0]``); ``argv`` as its ``main``
    takes it."""
    name = name or osp.basename(sys.argv[0])
    room, target, path = find_command(name)
    args = sys.argv[1:] if argv is None else argv
    if any(a in ('-h', '--help') for a in args):
        spec = importlib.util.spec_from_file_location(f'_adaptsr_command_{room}_{target}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(f'adaptsr.methods.{room}.{target}')
    return module.main(argv)
