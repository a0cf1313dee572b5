"""The transfer suite: every method on the synthetic corpus's four shifts,
tuned under one protocol (learning-rate grid, selection on dev, seeds).

    python tools/transfer_benchmark.py [--detectors gdino glip] \\
        [--shifts vocabulary composition appearance realignment] \\
        [--methods zero_shot sdpt text ...] [--shots 1 10] \\
        [--selection-seeds 1 2] [--seeds 3 30 300 3000 30000] \\
        [--extra-seeds 7 70 700 7000 70000] [--target-half-width 0.03] \\
        [--lr-factors 0.1 1 10] [--lr-edge-steps 2] [--lr sdpt=0.1 | \\
        --lr-from docs/transfer] \\
        [--iters 200] [--schedule cosine] [--numerics pinned] \\
        [--weight-decay shared] [--workers 2] [--pretrain] \\
        [--root data/synthetic] [--work-dir work_dirs/transfer] \\
        [--results-dir docs/transfer]

Tunes from the shipped bases (checkpoints/synthetic/; --pretrain trains them
again, deterministically, into WORK_DIR/bases/), writes the corpus and its
few-shot splits, runs every (method, shift, k): each learning rate of the
grid on every selection seed (one log step past the grid's end, up to
--lr-edge-steps times, where the best mean dev AP sits there), then the one
best on the selection seeds' mean dev AP on the reported seeds (and on the
extra seeds where their 95% interval is wider than the target), and writes
transfer.md / .csv (mean test AP with its 95% interval, paired differences
to SDPT; those also in comparisons.json) and one ap_vs_trainable_<shift>.png
per shift. Each run trains in
WORK_DIR/<detector>/<shift>/<method>/<run>/ and records its result
(metrics.json) in the same folder under RESULTS_DIR (default: WORK_DIR), where
the protocol and the report go too: a results folder holds only small files,
so it can be committed, and the suite continues from it on another machine.
Finished runs are skipped. --lr-from DIR runs each cell at the learning rate
the suite recorded in DIR selected for it, on the seeds it reported there
(extra seeds included; --seeds and --extra-seeds do not apply), e.g. again
under other --numerics; cells DIR has not selected for are left out.
--report-only trains nothing: it writes the report from the finished cells of
the requested suite (e.g. while another process runs the rest). See
projects/sdpt/experiments/transfer/ for the protocol.
"""
import argparse
import os
import os.path as osp
import sys
import time

import _bootstrap  # noqa: F401

from projects.sdpt.cli import name_value_pairs
from projects.sdpt.datasets.synthetic.corpus import SHIFTS
from projects.sdpt.engine.hooks.progress_hook import format_duration
from projects.sdpt.experiments.bases import DEFAULT_PRETRAIN_ITERS, base_info
from projects.sdpt.experiments.grid import run_grid
from projects.sdpt.experiments.transfer import protocol
from projects.sdpt.experiments.transfer.configs import (
    DEFAULT_WEIGHT_DECAY_RULE,
    DETECTOR_NAMES,
    SHARED_WEIGHT_DECAY,
    WEIGHT_DECAY_RULES,
    suite_methods,
)
from projects.sdpt.experiments.transfer.plan import (
    TransferPlan,
    base_files,
    check_protocol,
    is_pretrain,
    make_tasks,
    selected_settings,
)
from projects.sdpt.experiments.transfer.report import (
    finished_rows,
    time_left,
    write_report,
)
from projects.sdpt.experiments.transfer.runs import prepare_data
from projects.sdpt.experiments.zoo import DETECTORS
from projects.sdpt.utils.numerics import (
    DEFAULT_NUMERICS,
    NUMERICS,
    numerics_record,
    run_threads,
    set_numerics,
)


def parse_args(argv=None):
    methods = suite_methods()
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--detectors', nargs='+', choices=DETECTORS,
                        default=['gdino'])
    parser.add_argument('--shifts', nargs='+', choices=list(SHIFTS),
                        default=list(SHIFTS))
    parser.add_argument('--methods', nargs='+', choices=methods,
                        default=methods,
                        help='zoo methods and SDPT ablations, run in this '
                        'order')
    parser.add_argument('--shots', nargs='+', type=int,
                        default=list(protocol.DEFAULT_SHOTS))
    parser.add_argument('--seeds', nargs='+', type=int,
                        default=list(protocol.DEFAULT_SEEDS),
                        help='the reported seeds (few-shot split and '
                        'training), run at the selected learning rate')
    parser.add_argument('--selection-seeds', nargs='+', type=int,
                        default=list(protocol.DEFAULT_SELECTION_SEEDS),
                        help='the seeds the learning rates are tried on '
                        '(mean dev AP; never reported)')
    parser.add_argument('--extra-seeds', nargs='*', type=int,
                        default=list(protocol.DEFAULT_EXTRA_SEEDS),
                        help='reported seeds added to a cell whose 95%% '
                        'interval over --seeds is wider than '
                        '--target-half-width (none: never)')
    parser.add_argument('--target-half-width', type=float,
                        default=protocol.TARGET_HALF_WIDTH,
                        help='the test-AP interval half-width a cell aims '
                        'at')
    parser.add_argument('--weight-decay', choices=WEIGHT_DECAY_RULES,
                        default=DEFAULT_WEIGHT_DECAY_RULE,
                        help=f'{SHARED_WEIGHT_DECAY} for every method '
                        '(shared), or each zoo config\'s own (recipe)')
    parser.add_argument('--lr-factors', nargs='+', type=float,
                        default=list(protocol.DEFAULT_LR_FACTORS),
                        help="times each method's recipe learning rate")
    parser.add_argument(
        '--lr-edge-steps', type=int, default=protocol.DEFAULT_LR_EDGE_STEPS,
        help='runs past the end of the grid where the best dev AP sits')
    parser.add_argument('--lr', nargs='+', default=[], metavar='METHOD=LR',
                        help='a fixed learning rate (no selection)')
    parser.add_argument('--lr-from', metavar='RESULTS_DIR',
                        help='each cell at the learning rate the suite '
                        'recorded in RESULTS_DIR selected for it, on the '
                        'seeds it reported there (no selection; cells it '
                        'has not selected for are left out)')
    parser.add_argument('--iters', type=int, default=protocol.DEFAULT_ITERS,
                        help='training iterations of every run')
    parser.add_argument('--schedule', choices=protocol.SCHEDULES,
                        default=protocol.DEFAULT_SCHEDULE,
                        help='learning-rate schedule of every run')
    parser.add_argument('--numerics', choices=list(NUMERICS),
                        default=DEFAULT_NUMERICS,
                        help='CPU numerics of every run: pinned to AVX2 '
                        '(repeats bit for bit), native, or a perturbation '
                        '(projects/sdpt/utils/numerics.py)')
    parser.add_argument('--pretrain', action='store_true',
                        help='pretrain the bases here instead of using the '
                        'shipped ones')
    parser.add_argument('--pretrain-iters', nargs='+', default=[],
                        metavar='DET=N', help='pretraining iterations, '
                        f'default {DEFAULT_PRETRAIN_ITERS}')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: report the finished cells of '
                        'this suite (cells with runs to do are left out)')
    parser.add_argument('--root', default='data/synthetic')
    parser.add_argument('--work-dir', default='work_dirs/transfer',
                        help='where runs train (checkpoints, logs)')
    parser.add_argument('--results-dir', default=None,
                        help='where each run records its metrics.json, the '
                        'protocol and the report (default: --work-dir)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    fixed_lrs = name_value_pairs(args.lr, '--lr', set(suite_methods()), float)
    iters = dict(DEFAULT_PRETRAIN_ITERS, **name_value_pairs(
        args.pretrain_iters, '--pretrain-iters', set(DETECTORS), int))
    cell_settings = None
    if args.lr_from is not None:
        if fixed_lrs:
            raise SystemExit('error: give --lr or --lr-from, not both')
        try:
            cell_settings = selected_settings(args.lr_from)
        except ValueError as err:
            raise SystemExit(f'error: --lr-from {err}')
        wanted = [(d, s, m, k) for d in args.detectors for s in args.shifts
                  for m in args.methods if m != 'zero_shot'
                  for k in args.shots]
        left_out = [' '.join(map(str, cell)) for cell in wanted
                    if cell not in cell_settings]
        more = f' and {len(left_out) - 10} more' if len(left_out) > 10 \
            else ''
        print(f'--lr-from {args.lr_from}: {len(wanted) - len(left_out)} '
              f'of {len(wanted)} cells have a selected learning rate'
              + (f'; left out: {", ".join(left_out[:10])}{more}'
                 if left_out else ''), flush=True)
    root, work_root = osp.abspath(args.root), osp.abspath(args.work_dir)
    results_root = osp.abspath(args.results_dir or args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    os.makedirs(results_root, exist_ok=True)
    plan = TransferPlan(
        detectors=args.detectors, shifts=args.shifts, methods=args.methods,
        root=root, work_root=work_root,
        bases=base_files(args.detectors, work_root, args.pretrain),
        pretrain_iters=iters, shots=args.shots, seeds=args.seeds,
        lr_factors=args.lr_factors, fixed_lrs=fixed_lrs, iters=args.iters,
        lr_edge_steps=args.lr_edge_steps, schedule=args.schedule,
        selection_seeds=args.selection_seeds, weight_decay=args.weight_decay,
        extra_seeds=args.extra_seeds,
        target_half_width=args.target_half_width, results_root=results_root,
        cell_settings=cell_settings)
    reported = set(args.seeds) | set(args.extra_seeds)
    overlap = sorted(reported & set(args.selection_seeds))
    if overlap and plan.selects():
        raise SystemExit(f'error: seeds {overlap} both select and are '
                         f'reported: give --selection-seeds others than '
                         f'--seeds and --extra-seeds')
    if set(args.seeds) & set(args.extra_seeds):
        raise SystemExit(f'error: seeds '
                         f'{sorted(set(args.seeds) & set(args.extra_seeds))} '
                         f'are in both --seeds and --extra-seeds')
    check_protocol(results_root, plan.protocol(args.numerics))
    # before the workers start: torch reads these when it first computes
    set_numerics(args.numerics)
    start = time.time()
    if not args.report_only:
        try:
            prepare_data(root, args.shifts, args.shots,
                         plan.seeds_needed())
        except RuntimeError as err:
            raise SystemExit(f'error: {err}')
    tasks = make_tasks(plan)
    failures = []
    if not args.report_only:
        # a cached run the selection rules no longer want runs again
        todo = [t for t in tasks
                if (r := t.cached_result()) is None or not t.holds(r)]
        log_file = osp.join(work_root, 'workers.log')
        for det, path in plan.bases.items():
            print(f'{det} base: {osp.relpath(path)}', flush=True)
        cores = os.cpu_count() or 1
        if args.workers * run_threads() > cores:
            print(f'warning: {args.workers} workers x {run_threads()} '
                  f'threads per run on {cores} cores: runs wait on each '
                  f'other (results do not change); give --workers '
                  f'{max(1, cores // run_threads())}', flush=True)
        print(f'{sum(map(is_pretrain, todo))} base(s) to pretrain, '
              f'{len(tasks)} tasks ({len(tasks) - len(todo)} finished), '
              f'{args.workers} workers; their log: {log_file}', flush=True)
        _, failures = run_grid(tasks, args.workers, log_file,
                               threads=run_threads())
    report = finished_rows(tasks)
    rows = report['rows']
    if rows:
        meta = {DETECTOR_NAMES[det]: base_info(path)
                for det, path in plan.bases.items()}
        print(write_report(rows, args.shots, results_root, meta, report))
    left_s = time_left(report, args.workers, numerics_record()['cpu'])
    print(f"{report['cells']} cells reported ({len(rows)} runs)" + (
        f", {report['unfinished']} left out with {report['runs_left']} runs "
        f"to do" + (f' (at most ~{format_duration(left_s)} at '
                    f'{args.workers} workers, at the median run time of '
                    f'the finished runs, this CPU\'s where it has some)'
                    if left_s is not None else '')
        if report['unfinished'] else '') +
        f', {len(failures)} failed, {(time.time() - start) / 60:.1f} min; '
        f'tables and plots in {results_root}')
    for task, error in failures:
        print(f'  FAILED {task.name}: {error}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
