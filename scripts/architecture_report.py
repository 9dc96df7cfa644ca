"""How adaptsr's modules depend on each other, in the figures of the one-room-per-method layout.

    python scripts/architecture_report.py [-v]

Prints: the number of modules; import loops (strongly connected groups of modules, by grimp's import graph);
function-level imports of adaptsr's own modules (an optional heavy dependency, e.g. onnxruntime, is imported inside
a function, never an adaptsr module), those of the commands that import their work after parsing (``--help``
without torch) counted apart; imports from ``adaptsr.core`` into ``adaptsr.methods``; and string constants
outside a method's package that name the method (``pcsr``, ``etds``, ``smsr``, ``ape``, ``cabm`` as a word;
docstrings aside). ``-v`` lists each finding. The contracts themselves are checked by ``lint-imports``
(``.importlinter``).
"""
import argparse
import ast
import os.path as osp
import pathlib
import re
import sys

import grimp

#: the modules that import their work after parsing the command line, so that ``--help`` imports no torch (counted
#: apart from the function-level imports, which would otherwise hide an import loop): the package, the commands and
#: a room's own commands (``adaptsr/methods/<m>/*_cli.py``, declared in its ``declarations.COMMANDS``)
DEFERRING = ('adaptsr/__init__.py', 'adaptsr/cli/')
DEFERRING_SUFFIX = '_cli.py'

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
METHODS = ('pcsr', 'etds', 'smsr', 'ape', 'cabm')


def import_loops(graph):
    """Groups of two or more modules that import each other, directly or through others (Tarjan's algorithm)."""
    adj = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10000)
    for m in sorted(adj):
        if m not in index:
            visit(m)
    return groups


def _docstrings(tree):
    nodes = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, nodes) and n.body and
            isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def scan(package):
    """``(function-level adaptsr imports, those of :data:`DEFERRING`, method-name strings outside their package)`` of
    the source files."""
    local, deferred, names = [], [], []
    word = re.compile(r'\b(' + '|'.join(METHODS) + r')\b', re.I)
    for path in sorted(package.rglob('*.py')):
        rel = path.relative_to(package.parent)
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                mods = [node.module or ''] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if any(m.startswith('adaptsr') for m in mods) or getattr(node, 'level', 0):
                    deferring = str(rel).startswith(DEFERRING) or rel.name.endswith(DEFERRING_SUFFIX)
                    (deferred if deferring else local).append(f'{rel}:{node.lineno}: {ast.unparse(node)}')
        docs = _docstrings(tree)
        room = rel.parts[2] if len(rel.parts) > 3 and rel.parts[1] == 'methods' else None
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                for name in sorted({m.lower() for m in word.findall(node.value)} - {room}):
                    names.append(f'{rel}:{node.lineno}: {name}: {node.value[:60]!r}')
    return sorted(set(local)), sorted(set(deferred)), names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-v', '--verbose', action='store_true', help='list every finding')
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    graph = grimp.build_graph('adaptsr')
    loops = import_loops(graph)
    core = [(a, b) for a in graph.modules if a.startswith('adaptsr.core')
            for b in graph.find_modules_directly_imported_by(a) if b.startswith('adaptsr.methods')]
    local, deferred, names = scan(pathlib.Path(ROOT) / 'adaptsr')
    for label, found in (('import loops', loops), ('function-level imports of adaptsr modules', local),
                         ('imports the commands defer until their command line is parsed (fast --help)', deferred),
                         ('core modules importing a method', core),
                         ('method names as string constants outside their package', names)):
        print(f'{label}: {len(found)}')
        if args.verbose:
            for item in found:
                print(f'  {item}')
    print(f'modules: {len(graph.modules)}')
    return 1 if loops or core else 0


if __name__ == '__main__':
    sys.exit(main())
