"""Evaluation results aggregated across seeds: mean ± std per setting.

A run is a directory with ``report/<phase>/metrics.json`` (written by
``EvalReportHook``, on in the benchmark configs and with
``tools/test.py --report``), or else mmengine's own log of the run
(``<timestamp>/<timestamp>.json``; the last line with the metric is used) in
a directory named ``<k>shot_seed<seed>``. Runs are grouped by experiment (the
path up to the setting), dataset and k; each group gets the mean and the
sample standard deviation (n - 1) over its seeds of every metric and of the
per-class AP (``evaluation.statistics.mean_std``). For ODinW13, the average
over its datasets is added per k (the std is over the seeds' dataset
averages, computed for the seeds every dataset has). Usage::

    from projects.sdpt.evaluation.seed_aggregation import (
        aggregate, find_runs, pick_metric, table, write_aggregate)
    runs = find_runs(['work_dirs/sdpt_glip_odinw13'], phase='test')
    metric = pick_metric(runs)          # the *bbox_mAP / LVIS AP key
    rows = aggregate(runs, metric)
    write_aggregate('work_dirs/sdpt_glip_odinw13', runs, rows, metric)
    print(table(rows, metric))

``tools/aggregate_seeds.py`` is the command line.
"""
import glob
import json
import os
import os.path as osp
import re
from collections import defaultdict

from ..utils.io import atomic_write_json, atomic_write_text
from .statistics import find_metric_key, format_mean_std, mean_std

SETTING_RE = re.compile(r'\d+shot_seed\d+$')
ODINW13_COUNT = 13


class AggregationError(ValueError):
    """Runs that cannot be aggregated (none found, a seed twice, no AP)."""


def _mmengine_metrics(run_dir, metric):
    """The last row of the run's newest mmengine log that holds ``metric``
    (any AP when None) and an AP, or None."""
    logs = sorted(glob.glob(osp.join(run_dir, '*', '*.json')))
    logs = [p for p in logs if re.fullmatch(
        r'\d{8}_\d{6}', osp.basename(osp.dirname(p)))]
    for path in reversed(logs):
        found = None
        with open(path, encoding='utf-8') as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if (metric is None or metric in row) and \
                        find_metric_key(list(row), 'AP') is not None:
                    found = row
        if found:
            return found
    return None


def find_runs(roots, phase='test', metric=None):
    """Every run under ``roots`` as dicts (experiment, dataset, benchmark,
    shots, seed, metrics, per_class_ap, source)."""
    runs, seen = [], set()
    for root in roots:
        if not osp.isdir(root):
            raise AggregationError(f'Not a directory: {root}')
        root = osp.abspath(root)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            run_dir = None
            report = osp.join(dirpath, 'report', phase, 'metrics.json')
            if osp.isfile(report):
                run_dir = dirpath
                with open(report, encoding='utf-8') as f:
                    data = json.load(f)
                metrics = data.get('metrics') or {}
                per_class = data.get('per_class_ap') or {}
                setting = data.get('setting') or {}
                source = report
            elif SETTING_RE.search(dirpath.replace(os.sep, '/')):
                row = _mmengine_metrics(dirpath, metric)
                if row is None:
                    continue
                run_dir, metrics, per_class, setting = dirpath, row, {}, {}
                source = dirpath
            if run_dir is None or run_dir in seen:
                continue
            seen.add(run_dir)
            # Without a report (mmengine logs only) the path names the
            # setting: .../<k>shot_seed<seed>; the dataset stays part of the
            # experiment.
            rel = osp.relpath(run_dir, root).replace(os.sep, '/')
            m = re.search(r'(?P<shots>\d+)shot_seed(?P<seed>\d+)$', rel)
            name = setting.get('name') or (m.group(0) if m else None)
            if name and (rel == name or rel.endswith('/' + name)):
                experiment = rel[:-len(name)].rstrip('/')
            else:
                experiment = rel if rel != '.' else ''
            experiment = experiment or osp.basename(root)
            shots = setting.get('shots', int(m.group('shots')) if m else None)
            seed = setting.get('seed', int(m.group('seed')) if m else None)
            runs.append(dict(
                experiment=experiment, dataset=setting.get('dataset'),
                benchmark=setting.get('benchmark'), shots=shots, seed=seed,
                metrics={k: v for k, v in metrics.items()
                         if isinstance(v, (int, float))
                         and not isinstance(v, bool)},
                per_class_ap=per_class, source=source))
    return runs


def pick_metric(runs, metric=None):
    """``metric`` when given, else the runs' AP key (``*bbox_mAP``, LVIS
    ``*bbox_AP``)."""
    if metric:
        return metric
    key = find_metric_key([k for r in runs for k in r['metrics']], 'AP')
    if key is None:
        raise AggregationError('No AP metric found in the runs; name one '
                               'with --metric')
    return key


def _sorted_groups(groups):
    return sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0]))


def aggregate(runs, metric):
    """One row per (experiment, dataset, k): mean / std / n over the seeds
    of every metric and per-class AP, ``metric`` per seed; then the ODinW13
    averages."""
    groups = defaultdict(list)
    for run in runs:
        groups[(run['experiment'], run['dataset'], run['shots'])].append(run)
    rows = []
    for (experiment, dataset, shots), members in _sorted_groups(groups):
        members.sort(key=lambda r: (r['seed'] is None, r['seed']))
        seeds = [r['seed'] for r in members]
        if len(set(seeds)) != len(seeds):
            raise AggregationError(
                f'{experiment} {dataset} {shots}-shot: seed(s) reported '
                'twice: ' + ', '.join(r['source'] for r in members))
        stats = {}
        for key in sorted({k for r in members for k in r['metrics']}):
            mean, std, n = mean_std([r['metrics'].get(key) for r in members])
            stats[key] = dict(mean=mean, std=std, n=n)
        per_class = {}
        for name in dict.fromkeys(n for r in members
                                  for n in r['per_class_ap']):
            mean, std, n = mean_std([r['per_class_ap'].get(name)
                                     for r in members])
            per_class[name] = dict(mean=mean, std=std, n=n)
        rows.append(dict(
            experiment=experiment, dataset=dataset, shots=shots,
            benchmark=members[0]['benchmark'], seeds=seeds,
            per_seed={str(r['seed']): r['metrics'].get(metric)
                      for r in members},
            metrics=stats, per_class_ap=per_class))
    return rows + odinw_averages(rows, metric)


def odinw_averages(rows, metric):
    """Per (experiment, k) of ODinW13 rows: the mean over datasets of
    ``metric``, its std over the seeds' dataset averages."""
    out = []
    by = defaultdict(list)
    for row in rows:
        if row['benchmark'] == 'odinw13' and row['dataset']:
            by[(row['experiment'], row['shots'])].append(row)
    for (experiment, shots), members in _sorted_groups(by):
        mean, _, _ = mean_std(
            r['metrics'].get(metric, {}).get('mean') for r in members)
        # the std only over seeds that every dataset has
        common = set.intersection(*[set(r['seeds']) for r in members])
        per_seed = {}
        for seed in sorted(common):
            vals = [r['per_seed'].get(str(seed)) for r in members]
            if all(v is not None for v in vals):
                per_seed[str(seed)] = sum(vals) / len(vals)
        _, std, _ = mean_std(per_seed.values())
        out.append(dict(
            experiment=experiment,
            dataset=f'ODinW13 average ({len(members)} of '
            f'{ODINW13_COUNT} datasets)',
            shots=shots, benchmark='odinw13', seeds=sorted(common),
            per_seed=per_seed,
            metrics={metric: dict(mean=mean, std=std, n=len(per_seed))},
            per_class_ap={}))
    return out


def table(rows, metric):
    """A Markdown table of ``metric`` (in %) per row."""
    lines = [f'| experiment | dataset | shots | seeds | {metric} (%) |',
             '|---|---|---:|---|---:|']
    for row in rows:
        stat = row['metrics'].get(metric) or {}
        lines.append(
            f'| {row["experiment"]} | {row["dataset"] or "-"} | '
            f'{row["shots"] if row["shots"] else "full"} | '
            f'{", ".join(str(s) for s in row["seeds"])} | '
            f'{format_mean_std(stat.get("mean"), stat.get("std"), 1, 100)} |')
    return '\n'.join(lines) + '\n'


def write_aggregate(out_dir, runs, rows, metric):
    """Write ``aggregate.json`` and ``aggregate.md`` to ``out_dir``
    (atomically); return their paths."""
    json_path = osp.join(out_dir, 'aggregate.json')
    md_path = osp.join(out_dir, 'aggregate.md')
    atomic_write_json(
        dict(metric=metric, std='sample (n - 1) over seeds',
             runs=[r['source'] for r in runs], rows=rows), json_path)
    atomic_write_text(md_path, f'# {metric}: mean ± std over seeds\n\n'
                      + table(rows, metric))
    return json_path, md_path
