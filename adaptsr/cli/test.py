"""``adaptsr-test -opt options/test/X.yml [--force_yml k=v]``: BasicSR's test pipeline with adaptsr's registrations
and pipeline patches; ``results/`` is created in the working directory."""
import os

from basicsr.test import test_pipeline

from adaptsr.cli.errors import one_line_errors
from adaptsr.compat import patch_pipelines


def main(root=None):
    """Run BasicSR's ``test_pipeline`` (its command line); a bad input ends it with one line naming the culprit
    (:mod:`adaptsr.cli.errors`).

    Args:
        root (str | None): where ``results/`` goes (default: the working directory).
    """
    patch_pipelines()
    with one_line_errors('adaptsr-test'):
        test_pipeline(os.path.abspath(root or os.getcwd()))


if __name__ == '__main__':
    main()
