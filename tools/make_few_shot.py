"""Write a k-shot split of a COCO-format annotation file.

    python tools/make_few_shot.py ANN_FILE --shots 1 --seed 3 --out OUT.json

    # the whole protocol: k in {1, 3, 5, 10} x seeds {3, 30, 300}, written as
    # <stem>_<k>shot_seed<seed>.json (the names the benchmark configs read)
    # next to ANN_FILE (or in --out-dir), plus <stem>_few_shot_protocol.json
    python tools/make_few_shot.py ANN_FILE --protocol [--strict]
    # the same for each of the 13 ODinW13 training files under ODINW_ROOT
    python tools/make_few_shot.py ODINW_ROOT --odinw13 [--strict]

k instances per class (GLIP / DETReg / TFA convention), crowd annotations
never used; classes with fewer than k keep all they have and are reported,
or with --strict make the tool exit 1 without writing. The sampling rules
are in projects/sdpt/datasets/few_shot.py.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.datasets.benchmark_settings import (
    PROTOCOL_SEEDS,
    PROTOCOL_SHOTS,
)
from projects.sdpt.datasets.few_shot import (
    AnnotationFileError,
    run_odinw13,
    run_protocol,
    write_split,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='COCO-format annotation file (with '
                        '--odinw13: the ODinW root directory)')
    parser.add_argument('--shots', type=int, help='instances per class (k)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='output JSON path')
    parser.add_argument('--protocol', action='store_true',
                        help='write every --shots-list x --seeds split')
    parser.add_argument('--odinw13', action='store_true',
                        help='the protocol for each ODinW13 dataset under '
                        'the given root')
    parser.add_argument('--shots-list', type=int, nargs='+',
                        help='protocol k values (default 1 3 5 10)')
    parser.add_argument('--seeds', type=int, nargs='+',
                        help='protocol seeds (default 3 30 300)')
    parser.add_argument('--out-dir', help='protocol output directory '
                        '(default: next to the annotation file)')
    parser.add_argument('--strict', action='store_true',
                        help='fail if a class has fewer than --shots '
                        'instances instead of keeping what exists')
    args = parser.parse_args(argv)
    if args.protocol or args.odinw13:
        args.shots_list = args.shots_list or list(PROTOCOL_SHOTS)
        args.seeds = args.seeds or list(PROTOCOL_SEEDS)
        if min(args.shots_list) < 1:
            parser.error(f'--shots-list values must be >= 1, got '
                         f'{args.shots_list}')
        if args.odinw13 and args.out_dir:
            parser.error('--odinw13 writes next to each training file; '
                         'drop --out-dir')
    else:
        if args.shots is None or args.out is None:
            parser.error('--shots and --out are required (or use '
                         '--protocol)')
        if args.shots < 1:
            parser.error(f'--shots must be >= 1, got {args.shots}')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.odinw13:
            return run_odinw13(args.ann_file, args.shots_list, args.seeds,
                               args.strict)
        if args.protocol:
            return run_protocol(args.ann_file, args.shots_list, args.seeds,
                                args.out_dir, args.strict)[0]
        return write_split(args.ann_file, args.shots, args.seed, args.out,
                           args.strict)
    except AnnotationFileError as err:
        raise SystemExit(str(err)) from None


if __name__ == '__main__':
    sys.exit(main())
