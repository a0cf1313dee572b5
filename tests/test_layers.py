"""The package's import order: layers bottom to top, imports point down.

``LAYERS`` is the one statement of the order (README "Layout" repeats it). A
module may import from its own layer or a lower one; an import written
inside a function is allowed only for the optional heavy dependencies in
``LOCAL_IMPORTS_ALLOWED``, never to dodge a cycle (tools/ and tests/ keep
the same rule); and the module-level import graph of the package has no
cycle.
"""
import ast
import pathlib
from collections import defaultdict

import pytest

PACKAGE = 'projects.sdpt'
ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / 'projects' / 'sdpt'

#: Bottom to top; names in one tuple share a layer (and may not import each
#: other unless they are the same top-level name).
LAYERS = (
    ('utils', ),
    ('version', ),
    ('detectors', ),
    ('methods', ),
    ('checkpoint', ),
    ('models', ),
    ('datasets', 'evaluation'),
    ('engine', ),
    ('inference', ),
    ('serving', ),
    ('experiments', ),
    ('cli', ),
)
#: Third-party modules a function may import, with the reason.
LOCAL_IMPORTS_ALLOWED = {}


def _rank(top: str) -> int:
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(
        f'projects/sdpt/{top} is in no layer: add it to LAYERS in '
        f'tests/test_layers.py and to the README\'s layout.')


def _modules():
    for path in sorted(PACKAGE_DIR.rglob('*.py')):
        parts = path.relative_to(ROOT).with_suffix('').parts
        is_package = parts[-1] == '__init__'
        name = '.'.join(parts[:-1] if is_package else parts)
        yield path, name, is_package


def _imports(path, name, is_package):
    """``[(lineno, absolute module, inside a function)]`` of one file."""
    tree = ast.parse(path.read_text())
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(node)
                         if isinstance(n, (ast.Import, ast.ImportFrom)))
    package = name if is_package else name.rsplit('.', 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                module = node.module
            # ``from .pkg import module`` imports the submodule
            targets = [module] + [f'{module}.{alias.name}'
                                  for alias in node.names]
        else:
            continue
        for target in targets:
            found.append((node.lineno, target, id(node) in local))
    return found


def _top(module: str):
    """The first name below the package (``methods``), or None (the
    package itself or another library)."""
    if not module.startswith(PACKAGE + '.'):
        return None
    return module[len(PACKAGE) + 1:].split('.')[0]


def test_every_import_points_down():
    wrong = []
    for path, name, is_package in _modules():
        if name == PACKAGE:
            continue  # the registration entry point imports every layer
        mine = _top(name)
        for lineno, target, _ in _imports(path, name, is_package):
            theirs = _top(target)
            if theirs is None or theirs == mine:
                continue
            if _rank(theirs) >= _rank(mine):
                wrong.append(f'{path.relative_to(ROOT)}:{lineno} ({mine}) '
                             f'imports {target} ({theirs})')
    assert not wrong, 'imports against the layer order:\n' + '\n'.join(wrong)


def _scripts():
    """The tools and tests: outside the package, held to its import rule."""
    for folder in ('tools', 'tests'):
        for path in sorted((ROOT / folder).rglob('*.py')):
            yield path, path.stem, False


def test_no_import_inside_functions():
    found = []
    for path, name, is_package in [*_modules(), *_scripts()]:
        for lineno, target, local in _imports(path, name, is_package):
            if local and target.split('.')[0] not in LOCAL_IMPORTS_ALLOWED:
                found.append(f'{path.relative_to(ROOT)}:{lineno}')
    assert not found, ('imports inside functions (move them to the module '
                       'top):\n' + '\n'.join(sorted(set(found))))


def test_no_import_cycle():
    graph = defaultdict(set)
    names = {name for _, name, _ in _modules()}
    for path, name, is_package in _modules():
        for _, target, local in _imports(path, name, is_package):
            if not local and target in names and target != name:
                graph[name].add(target)
    # Importing ``a.b`` runs ``a/__init__.py`` first: a package's own
    # ``__init__`` importing its submodules is the one allowed loop.
    for name in names:
        graph[name] = {t for t in graph[name]
                       if not name.startswith(t + '.')}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = 'open'
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                cycles.append(' -> '.join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 'done'

    for node in sorted(names):
        if node not in state:
            visit(node, [node])
    assert not cycles, 'import cycles:\n' + '\n'.join(cycles)


def test_the_checks_see_a_wrong_import(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('def f():\n    from ..experiments import grid\n')
    imports = _imports(bad, f'{PACKAGE}.methods.bad', False)
    assert imports[0][1:] == (f'{PACKAGE}.experiments', True)
    assert _rank('experiments') > _rank('methods')
    with pytest.raises(AssertionError, match='in no layer'):
        _rank('nowhere')
