"""Official weights by name: list them, fetch them into the cache (checksummed), print a file's path.

    adaptsr-weights list [--method etds]
    adaptsr-weights fetch etds_m6c32_x4 pcsr_carn_x4        # or --all
    adaptsr-weights path etds_m6c32_x4
    adaptsr-infer photo.png -o sr/ --model etds_m6c32_x4   # a name is fetched on first use

Files are found under ``ADAPTSR_WEIGHTS`` (a copy of the official layout) or in the cache (``ADAPTSR_CACHE``);
``ADAPTSR_WEIGHTS_MIRROR`` replaces the official URLs by a mirror of that layout (:mod:`adaptsr.api.weights`).
"""
import sys

from adaptsr.cli.errors import one_line_errors
from adaptsr.core.errors import LoadError
from adaptsr.utils.argtypes import CLIParser


def main(argv=None):
    parser = CLIParser(prog='adaptsr-weights', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    listing = sub.add_parser('list', help='every official file: name, method, scale, size, where it is')
    listing.add_argument('--method', default=None, help='only the files of this method package (see adaptsr.methods)')
    get = sub.add_parser('fetch', help='download into the cache (sha256 checked)')
    get.add_argument('names', nargs='*')
    get.add_argument('--all', action='store_true')
    where = sub.add_parser('path', help='the local file of a name (fetched when needed)')
    where.add_argument('name')
    args = parser.parse_args(argv)
    # imported after the command line is parsed: the API imports torch (seconds), --help needs none of it
    from adaptsr.api.weights import cache_dir, fetch, local_path, manifest, source_url
    from adaptsr.utils.report import format_table
    with one_line_errors('adaptsr-weights', LoadError):
        if args.command == 'list':
            rows = []
            for name, info in manifest().items():
                if args.method and info['method'] != args.method:
                    continue
                found = local_path(name)
                rows.append({'name': name, 'method': info['method'], 'scale': info['scale'],
                             'arch': info['arch'] or f'(convert: {info["convert"]})', 'kib': info['size'] // 1024,
                             'here': found or '-'})
            print(format_table(rows, ['name', 'method', 'scale', 'arch', 'kib', 'here']))
            print(f'{len(rows)} files; cache: {cache_dir()}')
        elif args.command == 'fetch':
            names = list(manifest()) if args.all else args.names
            if not names:
                parser.error('fetch: give names or --all')
            for name in names:
                print(f'{name}: {fetch(name)} (from {source_url(name)} unless it was already here)')
        else:
            print(fetch(args.name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
