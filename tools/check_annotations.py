r"""Check a COCO-format annotation file (and its images) before training.

    python tools/check_annotations.py ANN.json --img-dir IMAGES/ \
        [--classes cat dog ...] [--tokenizer BERT_DIR] [--max-tokens 256]

Prints every problem with the file / field it is in and how to fix it
(projects/sdpt/datasets/data_check.py). Exit status 1 when there are errors,
0 otherwise (warnings only).
"""
import argparse
import json
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.datasets.data_check import check_coco_annotations


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('ann_file', help='COCO-format annotation JSON')
    parser.add_argument('--img-dir', help='image directory (data_prefix.img)')
    parser.add_argument(
        '--classes', nargs='+',
        help='class names the config trains on (metainfo.classes), in order')
    parser.add_argument(
        '--tokenizer', help='local tokenizer / BERT directory: count the '
        'prompt\'s tokens exactly and check every class name maps to tokens')
    parser.add_argument(
        '--max-tokens', type=int, default=None,
        help='text encoder token limit (language_model.max_tokens; mmdet: '
        '256)')
    parser.add_argument(
        '--headers-only', action='store_true',
        help='read image headers only (fast; misses truncated images)')
    parser.add_argument(
        '--json', action='store_true', help='print the report as JSON')
    parser.add_argument(
        '--max-listed', type=int, default=50, help='issues listed per kind')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    report = check_coco_annotations(
        args.ann_file, args.img_dir, args.classes,
        args.max_tokens if args.max_tokens is not None else (
            256 if args.tokenizer else None),
        tokenizer=args.tokenizer, decode_images=not args.headers_only)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, ensure_ascii=False))
    else:
        print(report.format(max_listed=args.max_listed))
    return 1 if report.errors else 0


if __name__ == '__main__':
    sys.exit(main())
