r"""Cost of a config against a comparison config: one model family, one input.

    python tools/speed_benchmark.py CONFIG [--compare CONFIG2] \
        [--lang-model DIR] [--options k=v ...] [--compare-options k=v ...] \
        [--size 320] [--batch-sizes 1 4] [--phases infer train] \
        [--warmup 1] [--repeats 3] [--rounds 1] [--json out.json]
    python tools/speed_benchmark.py CONFIG --bank-tasks 1 4 16 \
        [--bank-modes bank separate sequential bank_uncached] \
        [--batch-sizes 4] [--lang-model DIR] [--json out.json]

Measures, for each config: inference time per image at every batch size,
training step time (forward, loss, backward, AdamW step with gradient
clipping), peak memory of each phase, checkpoint size (the trainable
parameters only) and trainable %. It prints medians and the ratios
CONFIG / CONFIG2, and writes them as JSON with ``--json``.

Models are built with random weights (timing and memory do not depend on
them) and fed synthetic ``--size`` x ``--size`` images captioned with the
config's class names; every (config, phase, batch size) runs in a fresh child
process so peak memory is that phase's alone. ``--rounds N`` alternates the
configs N times against load from other processes. The same command runs on
a GPU (``--device cuda``, the default when one is present). Details:
projects/sdpt/experiments/speed.py.

``--bank-tasks N ...`` measures many tasks on one base instead: a prompt bank
of N tasks (mixed-task batches of the first ``--batch-sizes`` images) against
N detector instances and against the tasks one after the other, and the
prompted-key cache (images/s, peak memory, model memory, ratios).
Details: projects/sdpt/experiments/bank_speed.py.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from mmengine.config import DictAction

from projects.sdpt.experiments.bank_speed import (
    BANK_MODES,
    benchmark_bank,
    print_bank_report,
)
from projects.sdpt.experiments.measurement import ChildFailedError
from projects.sdpt.experiments.speed import PHASES, benchmark, print_report
from projects.sdpt.utils.io import atomic_write_json


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--compare', help='comparison config')
    parser.add_argument('--options', nargs='+', action=DictAction,
                        default={}, help='key=value overrides of CONFIG')
    parser.add_argument('--compare-options', nargs='+', action=DictAction,
                        default={},
                        help='key=value overrides of the comparison config')
    parser.add_argument('--lang-model', help='local BERT directory')
    parser.add_argument('--size', type=int, default=320)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1])
    parser.add_argument('--train-batch-size', type=int, default=1)
    parser.add_argument('--phases', nargs='+', choices=PHASES,
                        default=list(PHASES))
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=1)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--device', choices=('cpu', 'cuda'))
    parser.add_argument('--bank-tasks', type=int, nargs='+',
                        help='task counts N of the prompt-bank benchmark')
    parser.add_argument('--bank-modes', nargs='+', choices=BANK_MODES,
                        default=list(BANK_MODES))
    parser.add_argument('--json', help='write the report here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.bank_tasks:
            report = benchmark_bank(
                args.config, options=args.options,
                lang_model=args.lang_model, size=args.size,
                batch=args.batch_sizes[0], task_counts=args.bank_tasks,
                modes=args.bank_modes, warmup=args.warmup,
                repeats=args.repeats, threads=args.threads,
                device=args.device)
        else:
            report = benchmark(
                args.config, compare=args.compare, options=args.options,
                compare_options=args.compare_options,
                lang_model=args.lang_model, size=args.size,
                batch_sizes=args.batch_sizes,
                train_batch_size=args.train_batch_size, phases=args.phases,
                warmup=args.warmup, repeats=args.repeats,
                rounds=args.rounds, threads=args.threads,
                device=args.device)
    except ChildFailedError as err:
        raise SystemExit(str(err)) from None
    (print_bank_report if args.bank_tasks else print_report)(report)
    if args.json:
        atomic_write_json(report, args.json, indent=2)
        print(f'wrote {args.json}')
    return 0

if __name__ == '__main__':
    sys.exit(main())
