r"""Detect objects on your images with a tuned detector.

    python tools/infer.py CONFIG INPUT [INPUT ...] --prompt PROMPT_CKPT
        [--base-weights BASE.pth] [--texts cat dog | --texts "cat . dog"]
        [--out-dir out] [--score-thr 0.3] [--batch-size 1] [--device cpu]
        [--format json|coco|both] [--no-vis] [--no-progress]
    python tools/infer.py CONFIG INPUT ... --checkpoint FULL.pth --texts ...
    # a prompt bank: many tasks on one base, each image with its task's
    # prompts and classes (batches may mix tasks)
    python tools/infer.py CONFIG pets=photos/ tools=bench/*.jpg \
        --task pets=pets.pth --task tools=tools.pth [--task-texts pets=cat,dog]

INPUT: an image file, a folder (its image files) or a glob ('imgs/**/*.jpg');
with --task, TASK=INPUT. Class names: --texts, else the prompt checkpoint's
card, else the config's test classes. Writes OUT/vis/<image>.jpg (drawn by
mmdet's DetLocalVisualizer), OUT/preds/<image>.json (boxes x1 y1 x2 y2,
scores, labels, class names), with --format coco OUT/results.bbox.json (COCO
results) and OUT/results.images.json, and OUT/summary.json.

Bad inputs (missing, unreadable, not an image, truncated) are skipped with
the reason and the run goes on; the summary lists them and the exit status
is 1 when anything was skipped. A prompt checkpoint tuned on other base
weights (its card's fingerprint) is refused unless --allow-base-mismatch.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.cli import add_bank_arguments, parse_tasks, user_errors
from projects.sdpt.inference import PromptInferencer
from projects.sdpt.inference.inferencer import NoClassNamesError
from projects.sdpt.inference.prompt_bank import PromptBankError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('inputs', nargs='+',
                        help='image files, folders or globs (TASK=... '
                        'with --task)')
    parser.add_argument('--prompt', help='prompt checkpoint')
    parser.add_argument('--checkpoint', help='full detector checkpoint')
    parser.add_argument('--texts', nargs='+',
                        help='class names, overriding the checkpoint\'s')
    add_bank_arguments(parser, 'a prompt bank task (repeat for more)')
    parser.add_argument('--out-dir', default='outputs/infer')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--format', choices=('json', 'coco', 'both'),
                        default='json',
                        help='per-image JSON, COCO results, or both')
    parser.add_argument('--no-vis', action='store_true',
                        help='do not write drawn images')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tasks, task_texts = parse_tasks(args.task, args.task_texts)
    if args.batch_size < 1:
        raise SystemExit('--batch-size must be >= 1')
    inputs = args.inputs
    if tasks:
        if args.texts:
            raise SystemExit('With --task, give class names per task '
                             '(--task-texts NAME=a,b), not --texts.')
        inputs = [tuple(p.split('=', 1)) if '=' in p else (None, p)
                  for p in inputs]
        untasked = [p for t, p in inputs if t is None]
        if untasked:
            raise SystemExit(
                f'With --task every input is TASK=PATH; {untasked[0]!r} '
                f'names no task (tasks: {", ".join(tasks)}).')
    try:
        with user_errors():
            inferencer = PromptInferencer.from_files(
                args.config, base_weights=args.base_weights,
                prompt=args.prompt, checkpoint=args.checkpoint,
                texts=args.texts, tasks=tasks, task_texts=task_texts,
                device=args.device, cfg_options=args.cfg_options,
                allow_base_mismatch=args.allow_base_mismatch)
            summary = inferencer(
                inputs, out_dir=args.out_dir, batch_size=args.batch_size,
                score_thr=args.score_thr, save_vis=not args.no_vis,
                save_json=args.format in ('json', 'both'),
                coco=args.format in ('coco', 'both'),
                show_progress=not args.no_progress)
    except (NoClassNamesError, PromptBankError, FileNotFoundError,
            ValueError) as err:
        raise SystemExit(f'{type(err).__name__}: {err}') from None
    print(summary.format())
    return 1 if summary.skipped else 0


if __name__ == '__main__':
    sys.exit(main())

