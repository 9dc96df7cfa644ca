"""Test with BasicSR's pipeline and adaptsr's registrations: the options' datasets, metrics (PSNR/SSIM on Y with
crop_border = scale), cost per image and, with ``val.budget_sweep``, the trade-off table and plot; ``results/`` is
created in the working directory.

    adaptsr-test -opt etds_m6c32_x4                           # a shipped options file by name, or a path
    adaptsr-test -opt options/test/pcsr_carn_x4.yml --force-yml val:budget_sweep=[0,1]
"""
import os

from adaptsr.cli.errors import one_line_errors
from adaptsr.cli.pipeline_args import prepare_argv


def main(root=None):
    """Run BasicSR's ``test_pipeline`` (its command line); a bad input ends it with one line naming the culprit
    (:mod:`adaptsr.cli.errors`).

    Args:
        root (str | None): where ``results/`` goes (default: the working directory).
    """
    prepare_argv('adaptsr-test', __doc__, train=False)
    # imported after the help is printed: BasicSR and torch take seconds to import, --help needs neither
    from basicsr.test import test_pipeline

    from adaptsr.compat import patch_pipelines
    patch_pipelines()
    with one_line_errors('adaptsr-test'):
        test_pipeline(os.path.abspath(root or os.getcwd()))


if __name__ == '__main__':
    main()
