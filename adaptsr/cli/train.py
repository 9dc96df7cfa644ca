"""``adaptsr-train -opt options/train/X.yml [--auto_resume] [--force_yml k=v]``: BasicSR's training pipeline with
adaptsr's registrations and pipeline patches (:func:`adaptsr.compat.patch_pipelines`); ``experiments/`` is created
in the working directory."""
import os

from basicsr.train import train_pipeline

from adaptsr.cli.errors import one_line_errors
from adaptsr.compat import patch_pipelines


def main(root=None):
    """Run BasicSR's ``train_pipeline`` (its command line: ``-opt``, ``--auto_resume``, ``--force_yml``, ...); a bad
    input ends it with one line naming the culprit (:mod:`adaptsr.cli.errors`).

    Args:
        root (str | None): where ``experiments/`` and ``tb_logger/`` go (default: the working directory).
    """
    patch_pipelines()
    with one_line_errors('adaptsr-train'):
        train_pipeline(os.path.abspath(root or os.getcwd()))


if __name__ == '__main__':
    main()
