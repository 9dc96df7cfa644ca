"""argparse types shared by the commands and the model flags."""
import argparse


def int_at_least(low):
    """An argparse ``type``: an integer >= ``low`` (e.g. ``--threads``, ``--repeats``, ``--scale``: 1; ``--tile``: 0),
    refused by argparse with a message naming the flag's value otherwise."""

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
