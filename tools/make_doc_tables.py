"""Rewrite the generated tables of the documentation from their result files.

    python tools/make_doc_tables.py [FILE.md ...] [--check]

Every block between ``<!-- generated: SOURCE | ROWS | COLUMNS -->`` and
``<!-- end generated -->`` in README.md and docs/*.md (or the FILES given) is
rendered again from its source (spec format:
projects/sdpt/evaluation/doc_tables.py). ``--check`` writes nothing, names
every stale block and exits 1 when there is one.
"""
import argparse
import os.path as osp
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.evaluation.doc_tables import (
    DocTableError,
    fill_blocks,
    markdown_files,
)
from projects.sdpt.utils.io import atomic_write_text
from projects.sdpt.utils.paths import REPO_ROOT


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('files', nargs='*', help='markdown files (default: '
                        'README.md and docs/*.md)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 if a block is stale')
    parser.add_argument('--root', default=REPO_ROOT, help='the directory '
                        'the sources are relative to (default: the '
                        'repository root)')
    args = parser.parse_args(argv)
    stale_files = 0
    for path in args.files or markdown_files(args.root):
        with open(path, encoding='utf-8') as f:
            text = f.read()
        try:
            new_text, stale = fill_blocks(text, args.root)
        except DocTableError as err:
            raise SystemExit(f'{path}: {err}')
        name = osp.relpath(path)
        for spec in stale:
            print(f'{name}: {"stale" if args.check else "rewrote"} block '
                  f'"{spec}"')
        if stale:
            stale_files += 1
            if not args.check:
                atomic_write_text(path, new_text)
    return 1 if args.check and stale_files else 0


if __name__ == '__main__':
    sys.exit(main())
