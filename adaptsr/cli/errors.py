"""One-line errors for the console commands: a user's bad input ends the command with the message that names the
file, key or value at fault, not a traceback (``ADAPTSR_TRACEBACK=1`` shows the traceback, for a bug report)."""
import contextlib
import os
import sys


def user_errors():
    """The exception types that report a user's input (their messages name it)."""
    from adaptsr.core.errors import USER_ERRORS
    return USER_ERRORS + (FileNotFoundError, FileExistsError, ValueError)


@contextlib.contextmanager
def one_line_errors(prog):
    """End the command ``prog`` with ``prog: <message>`` (exit status 1) on a :func:`user_errors` exception.

    Raises:
        SystemExit: on such an exception (unless ``ADAPTSR_TRACEBACK`` is set: then it propagates).
    """
    try:
        yield
    except user_errors() as err:
        if os.environ.get('ADAPTSR_TRACEBACK'):
            raise
        msg = str(err).strip() or type(err).__name__
        sys.exit(f'{prog}: {msg}' + ('' if isinstance(err, (FileNotFoundError, FileExistsError)) else
                                     f' [{type(err).__name__}; ADAPTSR_TRACEBACK=1 shows the traceback]'))


def int_at_least(low):
    """An argparse ``type``: an integer >= ``low`` (e.g. ``--threads``, ``--repeats``, ``--scale``: 1; ``--tile``: 0),
    refused by argparse with a message naming the flag's value otherwise."""
    import argparse

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
        if value < low:
            raise argparse.ArgumentTypeError(f'{value} is less than {low}')
        return value

    parse.__name__ = f'integer >= {low}'
    return parse
