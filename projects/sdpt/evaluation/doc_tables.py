"""Tables in the documentation, generated from the result files they report.

A markdown file marks a generated table with two comments; everything
between them is rewritten by ``tools/make_doc_tables.py`` (``--check`` only
names the blocks that differ from what their source gives now)::

    <!-- generated: SOURCE | ROWS | COLUMNS -->

    | ... the table ... |

    <!-- end generated -->

The spec has three parts separated by ``|``:

- ``SOURCE``: a ``.csv`` file, or one or more ``.json`` files separated by
  ``,``; paths relative to the repository root (the same spec works in
  ``README.md`` and in ``docs/``).
- ``ROWS``, for a CSV: filters joined by ``&``; ``field=a,b`` keeps the rows
  whose ``field`` is written ``a`` or ``b`` in the file, ``field!=a,b``
  drops them; empty: every row. For JSON: the dotted path of an object whose
  keys become the rows (``runs``: one row per key), or of a list whose items
  do (keys ``0``, ``1``, ...), or empty: one row per file; filters may
  follow the path (``verdicts & detector=GLIP (tiny)``), on the fields of
  each row's object.
- ``COLUMNS``, joined by ``;``: ``PATH[FILTERS]:FORMAT as LABEL``, where only
  ``PATH`` is required. ``LABEL`` is the header (default: ``PATH``);
  ``FORMAT`` is ``MiB`` or ``GiB`` (a byte count shown in that unit),
  ``ci`` (CSV: mean with its 95% interval) or a Python format spec
  (``.0e``, ``.2f``).

  CSV: ``PATH`` is a field. The first column's distinct values make the
  rows, in the file's order, and each cell sums up that row's group (the
  filtered rows with that value), narrowed by its own ``[FILTERS]`` (as in
  ``ROWS``): a field written as integers (``trainable``) shows its distinct
  values; any other number the mean ± sample std over the group
  (``mean_std``: ``0.757 ± 0.054``, a single value without ``±``, ``–`` for
  none); text its distinct values. With a ``FORMAT`` a number field shows
  its distinct values in that format instead of the mean; the format
  ``ci`` shows the mean ± the half-width of its 95% confidence interval and
  the count (``0.757 ± 0.031 (n=5)``).

  JSON: ``PATH`` is dotted; ``*`` stands for the row's key
  (``ratios.*.bank_over_separate_images_per_s``), a path without ``*`` reads
  the file's top level (``size``), and ``file`` (the file name without
  ``.json``) and ``key`` (the row's key) name the row. Integers show as
  ``12,345``, other numbers with 3 significant digits, a missing value as
  ``–``.

Example (one line in the markdown file)::

    <!-- generated: docs/transfer/transfer.csv | SPEC_ROWS | SPEC_COLUMNS -->

with ``SPEC_ROWS`` = ``shift=realignment & selected=True`` (the runs the
transfer report selected) and ``SPEC_COLUMNS`` = ``method; trainable;
AP[shots=0,1] as AP k=1; AP[shots=0,10] as AP k=10``: one row per method,
its trainable count and its mean ± std test AP over the seeds at k=1 and at
k=10 (zero-shot, written as k=0, in both).
"""
import csv
import glob
import json
import os.path as osp
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .statistics import format_mean_std, mean_ci, mean_std

BLOCK = re.compile(r'<!-- generated: (?P<spec>[^\n]*?) -->\n'
                   r'(?P<body>.*?)<!-- end generated -->', re.DOTALL)
COLUMN = re.compile(r'^(?P<path>[^\[\]:]+?)\s*(?:\[(?P<filters>[^\]]*)\])?'
                    r'\s*(?::\s*(?P<format>\S+))?\s*(?:\bas\s+(?P<label>.+))?$')
MISSING = '–'
MiB = 2 ** 20
GiB = 2 ** 30


class DocTableError(ValueError):
    """A spec that cannot be rendered: the message names the spec and why."""


class Column(NamedTuple):
    path: str
    filters: List[Tuple[str, bool, Tuple[str, ...]]]
    format: Optional[str]
    label: str


class Spec(NamedTuple):
    sources: List[str]
    rows: str
    columns: List[Column]


class Block(NamedTuple):
    spec: str
    body: str
    start: int  # of the body in the markdown text
    end: int


def parse_filters(text: str) -> List[Tuple[str, bool, Tuple[str, ...]]]:
    """``'a=x,y & b!=z'`` -> ``[('a', True, ('x', 'y')), ('b', False,
    ('z',))]`` (field, keep-or-drop, the values as written)."""
    filters = []
    for term in filter(None, (t.strip() for t in text.split('&'))):
        match = re.match(r'^([^!=]+?)\s*(!?=)\s*(.*)$', term)
        if not match:
            raise DocTableError(f'filter {term!r} is not FIELD=VALUES or '
                                f'FIELD!=VALUES')
        field, op, values = match.groups()
        filters.append((field, op == '=',
                        tuple(v.strip() for v in values.split(','))))
    return filters


def parse_spec(spec: str) -> Spec:
    """The three parts of ``SOURCE | ROWS | COLUMNS`` (module doc)."""
    parts = [p.strip() for p in spec.split('|')]
    if len(parts) != 3:
        raise DocTableError(f'spec {spec!r} needs three parts, '
                            f'SOURCE | ROWS | COLUMNS')
    sources = [s.strip() for s in parts[0].split(',') if s.strip()]
    columns = []
    for text in filter(None, (c.strip() for c in parts[2].split(';'))):
        match = COLUMN.match(text)
        if not match:
            raise DocTableError(f'column {text!r} of spec {spec!r} is not '
                                f'PATH[FILTERS]:FORMAT as LABEL')
        path = match['path'].strip()
        label = (match['label'] or path).strip()
        columns.append(Column(path, parse_filters(match['filters'] or ''),
                              match['format'], label))
    if not sources or not columns:
        raise DocTableError(f'spec {spec!r} names no source or no column')
    return Spec(sources, parts[1], columns)


def _number(text: str):
    """The int or float written in ``text``, else None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def format_value(value, fmt: Optional[str] = None) -> str:
    """One value of a table: ints with thousands separators, other numbers
    with 3 significant digits, ``fmt`` (``'MiB'``, ``'GiB'`` or a format
    spec) when given, ``–`` for None."""
    if value is None:
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if fmt == 'MiB':
        return f'{value / MiB:,.0f}'
    if fmt == 'GiB':
        return f'{value / GiB:,.2f}'
    if fmt:
        return format(value, fmt)
    return f'{value:,}' if isinstance(value, int) else f'{value:.3g}'


def _distinct(values: Sequence) -> List:
    return list(dict.fromkeys(v for v in values if v is not None))


def _keep(row: Dict[str, str], filters) -> bool:
    return all((row[field].strip() in values) == keep
               for field, keep, values in filters)


def _keep_item(item, filters, path: str, rows_path: str) -> bool:
    """Whether a JSON row's object passes ``filters`` (on its fields)."""
    if not filters:
        return True
    if not isinstance(item, dict):
        raise DocTableError(f'{path}: the rows at {rows_path!r} are not '
                            f'objects, so they have no fields to filter on')
    return _keep({field: str(item.get(field)) for field, _, _ in filters},
                 filters)


def _csv_cell(rows: Sequence[Dict[str, str]], column: Column) -> str:
    rows = [r for r in rows if _keep(r, column.filters)]
    texts = [r[column.path].strip() for r in rows]
    numbers = [_number(t) for t in texts if t]
    if not numbers:
        return ', '.join(_distinct(texts)) or MISSING
    if None in numbers:  # a text field
        return ', '.join(_distinct(t for t in texts if t))
    if column.format == 'ci':
        return mean_ci(numbers).format(3)
    if column.format or all(isinstance(n, int) for n in numbers):
        return ', '.join(format_value(n, column.format)
                         for n in _distinct(numbers))
    mean, std, _ = mean_std(numbers)
    return format_mean_std(mean, std, 3)


def csv_rows(path: str, spec: Spec) -> List[List[str]]:
    """The table rows of a CSV source (module doc)."""
    with open(path, newline='', encoding='utf-8') as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = reader.fieldnames or []
    filters = parse_filters(spec.rows)
    named = {field for field, _, _ in filters} | {
        field for c in spec.columns for field, _, _ in c.filters} | {
        c.path for c in spec.columns}
    unknown = sorted(named - set(fields))
    if unknown:
        raise DocTableError(f'{path} has no column {", ".join(unknown)} '
                            f'(it has: {", ".join(fields)})')
    rows = [r for r in rows if _keep(r, filters)]
    first = spec.columns[0].path
    out = []
    for value in dict.fromkeys(r[first].strip() for r in rows):
        group = [r for r in rows if r[first].strip() == value]
        out.append([value] + [_csv_cell(group, c) for c in spec.columns[1:]])
    return out


def _lookup(document, path: str):
    value = document
    for part in path.split('.'):
        if isinstance(value, list) and part.isdigit() \
                and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


def json_rows(paths: Sequence[str], spec: Spec) -> List[List[str]]:
    """The table rows of JSON sources (module doc)."""
    out = []
    for path in paths:
        with open(path, encoding='utf-8') as f:
            document = json.load(f)
        if spec.rows:
            rows_path, _, filters = spec.rows.partition('&')
            rows_path = rows_path.strip()
            keyed = _lookup(document, rows_path)
            if not isinstance(keyed, (dict, list)):
                raise DocTableError(f'{path} has no object or list at '
                                    f'{rows_path!r} to take rows from')
            items = keyed.items() if isinstance(keyed, dict) else (
                (str(i), item) for i, item in enumerate(keyed))
            filters = parse_filters(filters)
            keys = [key for key, item in items
                    if _keep_item(item, filters, path, rows_path)]
        else:
            keys = [None]
        stem = osp.splitext(osp.basename(path))[0]
        for key in keys:
            row = []
            for column in spec.columns:
                if column.path == 'file':
                    value = stem
                elif column.path == 'key':
                    value = key
                else:
                    value = _lookup(document, column.path.replace(
                        '*', '' if key is None else str(key)))
                row.append(format_value(value, column.format))
            out.append(row)
    return out


def render_table(spec_text: str, root: str) -> str:
    """The markdown table ``spec_text`` describes, from its sources under
    ``root``."""
    spec = parse_spec(spec_text)
    paths = [osp.join(root, s) for s in spec.sources]
    missing = [s for s, p in zip(spec.sources, paths) if not osp.isfile(p)]
    if missing:
        raise DocTableError(f'no source file {", ".join(missing)} (paths are '
                            f'relative to the repository root)')
    if all(p.endswith('.csv') for p in paths) and len(paths) == 1:
        rows = csv_rows(paths[0], spec)
    elif all(p.endswith('.json') for p in paths):
        rows = json_rows(paths, spec)
    else:
        raise DocTableError(f'source {spec.sources} is not one .csv file or '
                            f'.json files')
    header = [c.label for c in spec.columns]
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def find_blocks(text: str) -> List[Block]:
    """The generated blocks of a markdown text, in order."""
    return [Block(m['spec'].strip(), m['body'], m.start('body'),
                  m.end('body')) for m in BLOCK.finditer(text)]


def fill_blocks(text: str, root: str) -> Tuple[str, List[str]]:
    """``text`` with every generated block rewritten from its source, and
    the specs of the blocks that changed (stale)."""
    pieces, stale, done = [], [], 0
    for block in find_blocks(text):
        try:
            body = '\n' + render_table(block.spec, root) + '\n\n'
        except DocTableError as err:
            raise DocTableError(f'block "{block.spec}": {err}') from None
        pieces += [text[done:block.start], body]
        done = block.end
        if body != block.body:
            stale.append(block.spec)
    return ''.join(pieces) + text[done:], stale


def markdown_files(root: str) -> List[str]:
    """The pages that may hold generated blocks: ``README.md`` and
    ``docs/*.md``."""
    return [osp.join(root, 'README.md')] + sorted(
        glob.glob(osp.join(root, 'docs', '*.md')))


__all__ = ['DocTableError', 'parse_spec', 'render_table', 'find_blocks',
           'fill_blocks', 'markdown_files', 'format_value']
