r"""Aggregate evaluation results across seeds: mean +- std per setting.

    python tools/aggregate_seeds.py work_dirs/sdpt_glip_odinw13 \
        [more work dirs] [--phase test] [--metric coco/bbox_mAP] [--out DIR]

Finds every run under the given directories (``report/<phase>/metrics.json``
of EvalReportHook / ``tools/test.py --report``, or mmengine's log in a
``<k>shot_seed<seed>`` directory), groups them by experiment, dataset and k,
and gives each group the mean and sample std (n - 1) over its seeds of every
metric and per-class AP, plus the ODinW13 average per k
(projects/sdpt/evaluation/seed_aggregation.py).

Writes ``aggregate.json`` and ``aggregate.md`` to --out (default: the first
directory) and prints the table (AP in %).
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.evaluation.seed_aggregation import (
    AggregationError,
    aggregate,
    find_runs,
    pick_metric,
    table,
    write_aggregate,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+',
                        help='directories holding the runs')
    parser.add_argument('--phase', default='test', choices=['test', 'val'],
                        help='which report to read (default test)')
    parser.add_argument('--metric', help='main metric (default: the '
                        '*bbox_mAP / LVIS AP key)')
    parser.add_argument('--out', help='output directory (default: the '
                        'first work dir)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        runs = find_runs(args.work_dirs, args.phase, args.metric)
        if not runs:
            raise AggregationError(
                'No runs found under ' + ', '.join(args.work_dirs) +
                f': expected report/{args.phase}/metrics.json (tools/test.py '
                '--report) or mmengine logs in <k>shot_seed<seed> '
                'directories.')
        metric = pick_metric(runs, args.metric)
        rows = aggregate(runs, metric)
    except AggregationError as err:
        raise SystemExit(str(err)) from None
    json_path, md_path = write_aggregate(args.out or args.work_dirs[0], runs,
                                         rows, metric)
    print(table(rows, metric), end='')
    print(f'{len(runs)} run(s); wrote {json_path} and {md_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
