"""argparse types and the parser shared by the commands and the model flags."""
import argparse
import copy


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


class CLIHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each flag's dashed spelling: an underscore spelling (BasicSR's style, ``--max_images``) stays
    accepted as a hidden alias of the dashed one (``--max-images``)."""

    def _format_action_invocation(self, action):
        shown = [s for s in action.option_strings if '_' not in s]
        if action.option_strings and shown != action.option_strings:
            action = copy.copy(action)
            action.option_strings = shown
        return super()._format_action_invocation(action)


class CLIParser(argparse.ArgumentParser):
    """The commands' parser: every dashed long flag (``--max-images``) also accepts its underscore spelling
    (``--max_images``), hidden from the help (:class:`CLIHelpFormatter`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('formatter_class', CLIHelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *names, **kwargs):
        aliases = [n.replace('-', '_').replace('__', '--', 1) for n in names if n.startswith('--') and '-' in n[2:]]
        return super().add_argument(*names, *[a for a in aliases if a not in names], **kwargs)
