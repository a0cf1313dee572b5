"""Pretrain tiny GLIP / Grounding DINO bases, then measure few-shot transfer.

    python tools/transfer_benchmark.py [--detectors glip gdino] \\
        [--methods zero_shot sdpt text ...] [--shots 1 3 5 10] [--seeds 3] \\
        [--iters 40] [--pretrain-iters glip=800 gdino=2000] [--workers 2] \\
        [--root data/synthetic] [--work-dir work_dirs/transfer]

Writes the synthetic corpus and its few-shot splits, pretrains and caches
each base, tunes every method of the zoo (``configs/demo/zoo``) on the k-shot
target splits and writes transfer.md / .csv and ap_vs_trainable_params.png to
WORK_DIR. Finished runs and cached bases are skipped. See
projects/sdpt/experiments/transfer.py.
"""
import argparse
import os
import os.path as osp
import sys
import time

import _bootstrap  # noqa: F401
from projects.sdpt.experiments import transfer
from projects.sdpt.experiments.grid import run_grid
from projects.sdpt.experiments.zoo import zoo_methods


def parse_args(argv=None):
    methods = zoo_methods()
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--detectors', nargs='+', choices=transfer.DETECTORS,
                        default=list(transfer.DETECTORS))
    parser.add_argument('--methods', nargs='+', choices=methods,
                        default=methods, help='methods of the zoo')
    parser.add_argument('--shots', nargs='+', type=int, default=[1, 3, 5, 10])
    parser.add_argument('--seeds', nargs='+', type=int, default=[3],
                        help="few-shot split seeds (the protocol's 3 30 300)")
    parser.add_argument('--iters', type=int, default=40,
                        help='training iterations of every transfer run')
    parser.add_argument('--pretrain-iters', nargs='+', default=[],
                        metavar='DET=N', help='pretraining iterations, '
                        f'default {transfer.DEFAULT_PRETRAIN_ITERS}')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--root', default='data/synthetic')
    parser.add_argument('--work-dir', default='work_dirs/transfer')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    iters = dict(transfer.DEFAULT_PRETRAIN_ITERS)
    for item in args.pretrain_iters:
        det, _, n = item.partition('=')
        if det not in transfer.DETECTORS or not n.isdigit():
            raise SystemExit(f'error: --pretrain-iters {item!r}: expected '
                             f'DET=N with DET in {transfer.DETECTORS}')
        iters[det] = int(n)
    root, work_root = osp.abspath(args.root), osp.abspath(args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    start = time.time()
    try:
        transfer.prepare_data(root, args.shots, args.seeds)
    except RuntimeError as err:
        raise SystemExit(f'error: {err}')
    tasks = transfer.make_tasks(args.detectors, args.methods, args.shots,
                                args.seeds, args.iters, iters, root,
                                work_root)
    bases = [t for t in tasks if transfer.is_pretrain(t)
             and t.cached_result() is None]
    log_file = osp.join(work_root, 'workers.log')
    print(f'{len(bases)} base(s) to pretrain, '
          f'{len(tasks) - len(args.detectors)} runs, {args.workers} '
          f'workers; their log: {log_file}', flush=True)
    results, failures = run_grid(tasks, args.workers, log_file)
    rows = transfer.sort_rows([results[t.name] for t in tasks
                               if t.name in results
                               and not transfer.is_pretrain(t)])
    if rows:
        print(transfer.write_report(
            rows, args.shots, work_root,
            transfer.pretrain_meta(root, args.detectors)))
    print(f'{len(rows)} runs, {len(failures)} failed, '
          f'{(time.time() - start) / 60:.1f} min; tables and plot in '
          f'{work_root}')
    for task, error in failures:
        print(f'  FAILED {task.name}: {error}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
