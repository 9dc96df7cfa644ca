"""One-line errors for the console commands: a user's bad input ends the command with the message that names the
file, key or value at fault, not a traceback (``ADAPTSR_TRACEBACK=1`` shows the traceback, for a bug report)."""
import contextlib
import os
import sys

from adaptsr.core.errors import USER_ERRORS


def user_errors(*more):
    """The exception types that report a user's input (their messages name it), and ``more``."""
    return USER_ERRORS + (FileNotFoundError, FileExistsError, ValueError) + more


@contextlib.contextmanager
def one_line_errors(prog, *more):
    """End the command ``prog`` with ``prog: <message>`` (exit status 1) on a :func:`user_errors` exception (or one
    of ``more``). adaptsr's own error types print their message alone; another (a bare ``ValueError`` from a library)
    is named, with the hint that ``ADAPTSR_TRACEBACK=1`` shows where it came from.

    Raises:
        SystemExit: on such an exception (unless ``ADAPTSR_TRACEBACK`` is set: then it propagates).
    """
    try:
        yield
    except user_errors(*more) as err:
        if os.environ.get('ADAPTSR_TRACEBACK'):
            raise
        msg = (str(err).strip() or type(err).__name__).splitlines()[0]
        ours = isinstance(err, USER_ERRORS + more + (FileNotFoundError, FileExistsError))
        sys.exit(f'{prog}: {msg}' + ('' if ours else f' [{type(err).__name__}; ADAPTSR_TRACEBACK=1 shows where]'))
