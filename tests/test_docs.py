"""The documentation: README.md and docs/ (links, anchors, length) and the
tables generated from result files (projects/sdpt/evaluation/doc_tables.py,
tools/make_doc_tables.py)."""
import glob
import os.path as osp
import re

import pytest
from conftest import REPO_ROOT
from helpers import run

from projects.sdpt.evaluation.doc_tables import (
    DocTableError,
    fill_blocks,
    find_blocks,
    markdown_files,
    render_table,
)

README = osp.join(REPO_ROOT, 'README.md')
PAGES = [README] + sorted(glob.glob(osp.join(REPO_ROOT, 'docs', '**', '*.md'),
                                    recursive=True))
FENCE = re.compile(r'^(```|~~~).*?^\1[^\n]*$', re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r'(`+)(?!`).*?(?<!`)\1(?!`)', re.DOTALL)
LINK = re.compile(r'\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def _prose(text):
    """``text`` without fenced code blocks and code spans (whose brackets
    are not links)."""
    return CODE_SPAN.sub('', FENCE.sub('', text))


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lowercase, punctuation
    other than ``-`` and ``_`` dropped, spaces to ``-``."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # links: text
    text = re.sub(r'[`*]', '', text).strip().lower()
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(path):
    """The anchors of a markdown file's headings (repeats get ``-1``,
    ``-2``..., as on GitHub)."""
    seen, out = {}, set()
    for line in FENCE.sub('', _read(path)).splitlines():
        match = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if match:
            slug = github_slug(match[1])
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            out.add(slug if count == 0 else f'{slug}-{count}')
    return out


def broken_links(path):
    """``'page: target (why)'`` for every relative link of ``path`` whose
    file or heading does not exist."""
    broken = []
    for target in LINK.findall(_prose(_read(path))):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target):  # http:, mailto:
            continue
        file_part, _, anchor = target.partition('#')
        dest = (osp.normpath(osp.join(osp.dirname(path), file_part))
                if file_part else path)
        name = osp.relpath(path, REPO_ROOT)
        if not osp.exists(dest):
            broken.append(f'{name}: {target} (no such file)')
        elif anchor and dest.endswith('.md') and anchor not in anchors(dest):
            broken.append(f'{name}: {target} (no such heading)')
    return broken


def test_github_slug_follows_githubs_rules():
    assert github_slug('How it works: the layout of `projects/sdpt/`') == \
        'how-it-works-the-layout-of-projectssdpt'
    assert github_slug('The transfer suite: where each method\'s strengths '
                       'show') == \
        'the-transfer-suite-where-each-methods-strengths-show'
    assert github_slug('Measured (Grounding DINO, 3 seeds)') == \
        'measured-grounding-dino-3-seeds'
    assert github_slug('snake_case and-dash') == 'snake_case-and-dash'


@pytest.mark.parametrize('page', PAGES,
                         ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_readme_is_at_most_250_lines():
    assert len(_read(README).splitlines()) <= 250


def test_readme_has_a_generated_headline_table():
    assert find_blocks(_read(README))


@pytest.mark.parametrize('page', markdown_files(REPO_ROOT),
                         ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_every_generated_block_equals_its_source_now(page):
    _, stale = fill_blocks(_read(page), REPO_ROOT)
    assert stale == [], ('run python tools/make_doc_tables.py to rewrite '
                         'these blocks')


CSV = '''method,shots,seed,AP,trainable,lr
zero-shot,0,,0.2,0,
SDPT,1,3,0.5,32768,1.0
SDPT,1,30,0.7,32768,1.0
SDPT,10,3,0.9,32768,0.1
'''
PAGE = '''# Results

<!-- generated: runs.csv | shots=0,1 | method; trainable; AP as test AP -->
<!-- end generated -->

Text after the table.
'''
TABLE = '''
| method | trainable | test AP |
|---|---|---|
| zero-shot | 0 | 0.200 |
| SDPT | 32,768 | 0.600 ± 0.141 |

'''


@pytest.fixture
def tiny_docs(tmp_path):
    (tmp_path / 'runs.csv').write_text(CSV)
    (tmp_path / 'page.md').write_text(PAGE)
    return tmp_path


def test_a_block_is_filled_from_its_csv_and_the_rest_kept(tiny_docs):
    text, stale = fill_blocks(PAGE, str(tiny_docs))
    assert text == PAGE.replace('-->\n<!-- end', '-->\n' + TABLE +
                                '<!-- end')
    assert stale == ['runs.csv | shots=0,1 | method; trainable; AP as test AP']
    assert fill_blocks(text, str(tiny_docs)) == (text, [])


def test_column_filters_formats_and_dropping_rows(tiny_docs):
    table = render_table('runs.csv | method!=zero-shot | method; '
                         'AP[shots=10] as k=10; lr:.0e', str(tiny_docs))
    assert table.splitlines() == ['| method | k=10 | lr |', '|---|---|---|',
                                  '| SDPT | 0.900 | 1e+00, 1e-01 |']
    # 95% t-interval of 0.5, 0.7: 0.6 ± 12.706 x 0.1414 / sqrt(2)
    table = render_table('runs.csv | shots=1 | method; AP:ci as AP',
                         str(tiny_docs))
    assert table.splitlines()[-1] == '| SDPT | 0.600 ± 1.271 (n=2) |'


def test_json_rows_from_an_object_and_one_row_per_file(tmp_path):
    (tmp_path / 'a.json').write_text(
        '{"size": 128, "runs": {"1": {"s": 17.93, "mem": 639107072}}, '
        '"ratios": {"1": {"r": 1.12442}}}')
    (tmp_path / 'b.json').write_text('{"size": 320}')
    assert render_table('a.json | runs | key as N; size; runs.*.s; '
                        'runs.*.mem:MiB as MiB; ratios.*.r:.2f',
                        str(tmp_path)).splitlines()[2] == \
        '| 1 | 128 | 17.9 | 610 | 1.12 |'
    assert render_table('a.json, b.json | | file; size; runs.1.s',
                        str(tmp_path)).splitlines()[2:] == [
        '| a | 128 | 17.9 |', '| b | 320 | – |']
    # a list's items are rows too, in its order
    (tmp_path / 'c.json').write_text(
        '{"verdicts": [{"m": "CoOp", "v": "higher"}, {"m": "LoRA"}]}')
    assert render_table('c.json | verdicts | verdicts.*.m as method; '
                        'verdicts.*.v as verdict; verdicts.5.m',
                        str(tmp_path)).splitlines()[2:] == [
        '| CoOp | higher | – |', '| LoRA | – | – |']
    # ... kept or dropped by their fields
    (tmp_path / 'd.json').write_text(
        '{"verdicts": [{"m": "CoOp", "k": 10, "d": "GLIP (tiny)"}, '
        '{"m": "LoRA", "k": 1, "d": "GLIP (tiny)"}, '
        '{"m": "BitFit", "k": 10}]}')
    assert render_table('d.json | verdicts & d=GLIP (tiny) & k!=1 | '
                        'verdicts.*.m', str(tmp_path)).splitlines()[2:] == [
        '| CoOp |']
    with pytest.raises(DocTableError, match="rows at 'runs.1' are not obj"):
        render_table('a.json | runs.1 & s=1 | key', str(tmp_path))


def test_a_spec_naming_a_missing_file_or_column_says_so(tiny_docs):
    with pytest.raises(DocTableError, match='no source file nope.csv'):
        render_table('nope.csv | | method', str(tiny_docs))
    with pytest.raises(DocTableError, match='has no column seeds'):
        render_table('runs.csv | seeds=3 | method', str(tiny_docs))


def test_check_names_the_stale_block_and_a_rewrite_fixes_it(tiny_docs):
    page, root = str(tiny_docs / 'page.md'), str(tiny_docs)

    def make_doc_tables(*args):
        return run('make_doc_tables.py', page, '--root', root, *args,
                   cwd=root, ok=False)

    assert make_doc_tables().code == 0
    assert make_doc_tables('--check').code == 0
    (tiny_docs / 'runs.csv').write_text(CSV.replace('0.7', '0.9'))
    check = make_doc_tables('--check')
    assert check.code == 1, check.out
    assert 'page.md: stale block "runs.csv | shots=0,1 |' in check.stdout
    assert '0.600 ± 0.141' in (tiny_docs / 'page.md').read_text()  # kept
    assert make_doc_tables().code == 0
    assert '0.700 ± 0.283' in (tiny_docs / 'page.md').read_text()
    assert make_doc_tables('--check').code == 0


def test_the_link_check_sees_a_missing_file_or_heading(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text('# A title\n\n## Second: part\n\n'
                    '[ok](#second-part) [ok](page.md#a-title) '
                    '[gone](nope.md) [gone](#no-such-heading) '
                    '`[in code](nope.md)` [web](https://example.org/x)\n'
                    '```\n[in a block](nope.md)\n```\n')
    assert [b.split(': ', 1)[1] for b in broken_links(str(page))] == [
        'nope.md (no such file)', '#no-such-heading (no such heading)']
