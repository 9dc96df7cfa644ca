"""The command line of ``adaptsr-train`` / ``adaptsr-test``: BasicSR's own flags, with a help that has a description
and examples, dashed spellings (``--auto-resume``, ``--force-yml``) beside BasicSR's underscore ones, and ``-opt``
taking a shipped options file by name. BasicSR's pipeline then parses ``sys.argv`` as it always does."""
import sys

from adaptsr.utils.argtypes import CLIParser

#: dashed spelling -> BasicSR's
BASICSR_SPELLING = {'--auto-resume': '--auto_resume', '--force-yml': '--force_yml', '--local-rank': '--local_rank'}


def help_parser(prog, doc, train):
    """The parser whose help ``-h`` prints (BasicSR's flags, documented)."""
    parser = CLIParser(prog=prog, description=doc)
    parser.add_argument('-opt', required=True, help='options YAML: a path, or the name of a shipped one (e.g. '
                        + ('pcsr_carn_x4_demo)' if train else 'etds_m6c32_x4)'))
    if train:
        parser.add_argument('--auto-resume', action='store_true',
                            help="resume from the experiment's latest readable training state")
    parser.add_argument('--overwrite', action='store_true',
                        help=('remove experiments/<name> and tb_logger/<name> of an earlier run' if train else
                              'remove results/<name> of an earlier run') + ' (default: BasicSR archives it as '
                        '<folder>_archived_<time>)')
    parser.add_argument('--force-yml', nargs='+', metavar='KEY=VALUE',
                        help='override options, key:sub=value (list indices allowed: train:phases:0:iters=100)')
    parser.add_argument('--launcher', choices=('none', 'pytorch', 'slurm'), default='none',
                        help='distributed launcher (pytorch: torchrun; gloo on CPU)')
    parser.add_argument('--debug', action='store_true', help="BasicSR's debug mode (name prefixed with debug_)")
    parser.add_argument('--local-rank', type=int, default=0, help='set by the launcher')
    return parser


def prepare_argv(prog, doc, train, argv=None):
    """Print the help and exit for ``-h``; otherwise put the dashed spellings into BasicSR's in ``sys.argv``."""
    argv = sys.argv if argv is None else argv
    if any(a in ('-h', '--help') for a in argv[1:]):
        help_parser(prog, doc, train).print_help()
        raise SystemExit(0)
    argv[1:] = [BASICSR_SPELLING.get(a, a) for a in argv[1:]]
    return argv
