"""Train with BasicSR's pipeline, adaptsr's registrations and its pipeline patches (CPU resume, gloo, checked
options): one YAML holds a method's whole recipe, all phases; ``experiments/`` and ``tb_logger/`` are created in the
working directory.

    adaptsr-train -opt pcsr_carn_x4_demo                      # a shipped options file by name, or a path
    adaptsr-train -opt options/train/etds_m4c32_x4.yml --auto-resume
    adaptsr-train -opt smsr_x2_291 --force-yml train:phases:0:iters=2000 name=smsr_short
"""
import os

from adaptsr.cli.errors import one_line_errors
from adaptsr.cli.pipeline_args import prepare_argv


def main(root=None):
    """Run BasicSR's ``train_pipeline`` (its command line: ``-opt``, ``--auto_resume``, ``--force_yml``, ...); a bad
    input ends it with one line naming the culprit (:mod:`adaptsr.cli.errors`).

    Args:
        root (str | None): where ``experiments/`` and ``tb_logger/`` go (default: the working directory).
    """
    prepare_argv('adaptsr-train', __doc__, train=True)
    # imported after the help is printed: BasicSR and torch take seconds to import, --help needs neither
    from basicsr.train import train_pipeline

    from adaptsr.compat import patch_pipelines
    from adaptsr.core.precision import flush_denormals
    flush_denormals()  # before the first parallel operation creates the thread pool, which inherits it
    patch_pipelines()
    with one_line_errors('adaptsr-train'):
        train_pipeline(os.path.abspath(root or os.getcwd()))


if __name__ == '__main__':
    main()
