"""The results tables of the grids of runs: the comparison grid and the
transfer suite write theirs with these, so that both aggregate, format and
store runs the same way.

- ``aggregate_groups``: one entry per group of runs (e.g. a config's
  seeds), with the mean and sample std of each metric
  (``evaluation/statistics.py`` decides what a mean ± std of one run, or of
  none, is);
- ``mean_std_cell`` / ``markdown_table``: the cells and lines of the
  markdown tables;
- ``csv_text``: a CSV of result rows;
- ``ap_points``: the points of ``plot_ap_vs_trainable``.
"""
import csv
import io
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from ..evaluation.statistics import ci_half_width, format_mean_std, mean_std

#: the result file of every run of a grid (what the grid reads back)
METRICS = 'metrics.json'


def aggregate_groups(rows: Sequence[Dict], by: Sequence[str],
                     keys: Sequence[str], labels: Sequence[str] = ()
                     ) -> List[Dict]:
    """One entry per group of ``rows`` with equal ``by`` values, in the
    order the groups first appear: the ``by`` and ``labels`` values of the
    group's first row, ``runs`` (the group's size), then each of ``keys``
    as its mean over the group and ``<key>_std`` (None for a single run)."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    table = []
    for group in groups.values():
        entry = {k: group[0][k] for k in dict.fromkeys([*by, *labels])}
        entry['runs'] = len(group)
        for key in keys:
            entry[key], entry[key + '_std'], _ = mean_std(
                [r.get(key) for r in group])
        table.append(entry)
    return table


def mean_std_cell(values: Iterable, digits: int = 3) -> str:
    """``'0.231 ± 0.004'`` of ``values`` (``'–'`` without any)."""
    mean, std, _ = mean_std(values)
    return format_mean_std(mean, std, digits)


def markdown_table(columns: Sequence[str],
                   rows: Iterable[Sequence[str]]) -> List[str]:
    """The lines of a markdown table: header, rule, one line per row."""
    lines = ['| ' + ' | '.join(columns) + ' |',
             '|' + '---|' * len(columns)]
    return lines + ['| ' + ' | '.join(row) + ' |' for row in rows]


def csv_text(records: Sequence[Dict],
             fields: Optional[Sequence[str]] = None) -> str:
    """A CSV of ``records``, with the ``fields`` columns (default: the first
    record's keys); keys outside them are left out."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields or records[0]),
                            extrasaction='ignore')
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def ap_points(entries: Sequence[Dict], series: Callable[[Dict], str],
              label: str = 'method', error: str = 'std') -> List[Dict]:
    """The points of ``plot_ap_vs_trainable`` for aggregated ``entries``
    (``AP``, ``AP_std``, ``runs``, ``trainable``), labelled by their
    ``label`` key and coloured by ``series(entry)``; the error bar is the
    std over the runs (``error='std'``) or the half-width of the mean's 95%
    interval (``'ci'``)."""
    if error not in ('std', 'ci'):
        raise ValueError(f"error bar {error!r}: 'std' or 'ci'")
    return [dict(label=e[label], series=series(e), trainable=e['trainable'],
                 AP=e['AP'],
                 AP_error=e['AP_std'] if error == 'std' else ci_half_width(
                     e['AP_std'], e['runs'])) for e in entries]
