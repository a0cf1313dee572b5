"""Aggregate evaluation results across seeds: mean +- std per setting.

    python tools/aggregate_seeds.py work_dirs/sdpt_glip_odinw13 \
        [more work dirs] [--phase test] [--metric coco/bbox_mAP] [--out DIR]

Finds every run under the given directories: a run is a directory with
``report/<phase>/metrics.json`` (written by EvalReportHook, on in the
benchmark configs and with ``tools/test.py --report``), or else mmengine's
own log of the run (``<timestamp>/<timestamp>.json``; the last line with the
metric is used) in a directory named ``<k>shot_seed<seed>``. Runs are grouped
by experiment (the path up to the setting), dataset and k; each group gets
the mean and the sample standard deviation (n - 1) over its seeds of every
metric and of the per-class AP. For ODinW13, the average over its datasets
is added per k (the std is over the seeds' dataset averages, computed for
the seeds every dataset has).

Writes ``aggregate.json`` and ``aggregate.md`` to --out (default: the first
directory) and prints the table (AP in %).
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import re
import sys
from collections import defaultdict

SETTING_RE = re.compile(r'\d+shot_seed\d+$')
ODINW13_COUNT = 13


def _mmengine_metrics(run_dir, metric):
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
                if metric is None or metric in row:
                    if any(k.endswith(('bbox_mAP', '/AP')) for k in row):
                        found = row
        if found:
            return found
    return None


def find_runs(roots, phase='test', metric=None):
    """Every run under ``roots`` as dicts (experiment, dataset, shots, seed,
    metrics, per_class_ap, source)."""
    runs, seen = [], set()
    for root in roots:
        if not osp.isdir(root):
            raise SystemExit(f'Not a directory: {root}')
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
            dataset = setting.get('dataset')
            runs.append(dict(
                experiment=experiment, dataset=dataset,
                benchmark=setting.get('benchmark'), shots=shots, seed=seed,
                metrics={k: v for k, v in metrics.items()
                         if isinstance(v, (int, float))
                         and not isinstance(v, bool)},
                per_class_ap=per_class, source=source))
    return runs


def mean_std(values):
    """Mean and sample std (None for one value); Nones are skipped."""
    values = [v for v in values if v is not None and not (
        isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None, 0
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None, len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var), len(values)


def pick_metric(runs, metric):
    if metric:
        return metric
    keys = [k for r in runs for k in r['metrics']]
    for suffix in ('bbox_mAP', '/AP'):
        for key in keys:
            if key.endswith(suffix):
                return key
    raise SystemExit('No AP metric found in the runs; name one with '
                     '--metric')


def aggregate(runs, metric):
    groups = defaultdict(list)
    for run in runs:
        groups[(run['experiment'], run['dataset'], run['shots'])].append(run)
    rows = []
    for (experiment, dataset, shots), members in sorted(
            groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        members.sort(key=lambda r: (r['seed'] is None, r['seed']))
        seeds = [r['seed'] for r in members]
        if len(set(seeds)) != len(seeds):
            raise SystemExit(
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
    out = []
    by = defaultdict(list)
    for row in rows:
        if row['benchmark'] == 'odinw13' and row['dataset']:
            by[(row['experiment'], row['shots'])].append(row)
    for (experiment, shots), members in sorted(
            by.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        means = [r['metrics'].get(metric, {}).get('mean') for r in members]
        means = [m for m in means if m is not None]
        common = set.intersection(*[set(r['seeds']) for r in members])
        per_seed = {}
        for seed in sorted(common):
            vals = [r['per_seed'].get(str(seed)) for r in members]
            if all(v is not None for v in vals):
                per_seed[str(seed)] = sum(vals) / len(vals)
        _, std, _ = mean_std(list(per_seed.values()))
        out.append(dict(
            experiment=experiment,
            dataset=f'ODinW13 average ({len(members)} of '
            f'{ODINW13_COUNT} datasets)',
            shots=shots, benchmark='odinw13', seeds=sorted(common),
            per_seed=per_seed,
            metrics={metric: dict(mean=sum(means) / len(means)
                                  if means else None, std=std,
                                  n=len(per_seed))},
            per_class_ap={}))
    return out


def fmt(stat):
    if not stat or stat['mean'] is None:
        return 'n/a'
    text = f'{100 * stat["mean"]:.1f}'
    if stat['std'] is not None:
        text += f' ± {100 * stat["std"]:.1f}'
    return text


def table(rows, metric):
    lines = [f'| experiment | dataset | shots | seeds | {metric} (%) |',
             '|---|---|---:|---|---:|']
    for row in rows:
        lines.append(
            f'| {row["experiment"]} | {row["dataset"] or "-"} | '
            f'{row["shots"] if row["shots"] else "full"} | '
            f'{", ".join(str(s) for s in row["seeds"])} | '
            f'{fmt(row["metrics"].get(metric))} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+',
                        help='directories holding the runs')
    parser.add_argument('--phase', default='test', choices=['test', 'val'],
                        help='which report to read (default test)')
    parser.add_argument('--metric', help='main metric (default: the '
                        '*bbox_mAP / LVIS AP key)')
    parser.add_argument('--out', help='output directory (default: the '
                        'first work dir)')
    args = parser.parse_args(argv)

    runs = find_runs(args.work_dirs, args.phase, args.metric)
    if not runs:
        raise SystemExit(
            'No runs found under ' + ', '.join(args.work_dirs) + f': expected '
            f'report/{args.phase}/metrics.json (tools/test.py --report) or '
            'mmengine logs in <k>shot_seed<seed> directories.')
    metric = pick_metric(runs, args.metric)
    rows = aggregate(runs, metric)
    out_dir = args.out or args.work_dirs[0]
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'aggregate.json'), 'w',
              encoding='utf-8') as f:
        json.dump(dict(metric=metric, std='sample (n - 1) over seeds',
                       runs=[r['source'] for r in runs], rows=rows), f,
                  indent=1)
    text = table(rows, metric)
    with open(osp.join(out_dir, 'aggregate.md'), 'w', encoding='utf-8') as f:
        f.write(f'# {metric}: mean ± std over seeds\n\n' + text)
    print(text, end='')
    print(f'{len(runs)} run(s); wrote {osp.join(out_dir, "aggregate.json")} '
          f'and aggregate.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
