"""Run a grid of experiments (configs x seeds) and write one comparison table.

    python tools/compare.py configs/demo/zoo/*_gdino_tiny_demo.py \\
        --seeds 0 1 --work-dir work_dirs/compare_demo [--workers 1] [--gpus N]

For every config and seed: train with tools/train.py, evaluate the last
checkpoint with tools/test.py (zero-shot configs: evaluate once). Finished
runs are skipped, interrupted ones resume; a failed run is reported and the
others go on. Writes comparison.md / .csv, runs.csv and
ap_vs_trainable_params.png to WORK_DIR (projects/sdpt/experiments/
comparison.py). On a GPU node, ``--gpus N`` trains each run with torchrun.
"""
import argparse
import os
import os.path as osp
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.experiments import comparison
from projects.sdpt.experiments.grid import run_grid


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='one config per method')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='seeds per config')
    parser.add_argument('--work-dir', default='work_dirs/compare',
                        help='where runs and tables go')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for every run (passed to '
                        'tools/train.py and tools/test.py)')
    parser.add_argument('--workers', type=int, default=1,
                        help='runs at the same time')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per training run')
    parser.add_argument('--report-only', action='store_true',
                        help='only collect the finished runs into the tables')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for config in args.configs:
        if not osp.isfile(config):
            raise SystemExit(f'Config file not found: {config}')
    os.makedirs(args.work_dir, exist_ok=True)
    tasks = comparison.make_tasks(args.configs, args.seeds, args.work_dir,
                                  args.cfg_options, args.gpus)
    if args.report_only:
        results = {t.name: t.cached_result() for t in tasks
                   if t.cached_result() is not None}
        failures = []
    else:
        results, failures = run_grid(
            tasks, args.workers, osp.join(args.work_dir, 'workers.log'))
    markdown = comparison.report(tasks, results, args.work_dir)
    if markdown is None:
        raise SystemExit('No finished run to report.')
    print(markdown)
    print(f'Tables and plot in {args.work_dir} ({len(results)} of '
          f'{len(tasks)} runs finished).')
    if failures:
        print('Failed runs (run the command again to retry them):')
        for task, error in failures:
            print(f'  {task.name}: {error}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
