"""Use a served prompt-bank page in headless Chromium and save a screenshot:
pick a task, upload images, press Detect, read the result.

    python tools/serve_screenshot.py URL --task NAME --images IMG [IMG ...]
        [--classes "cat . dog"] [--score-thr 0.3] --out page.png

URL: a page started by tools/serve.py. Prints what the page said and how
many detections each image got. Needs requirements-serve.txt and the
system's Chromium (Debian: apt-get install chromium).
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.cli import import_optional

browser = import_optional('projects.sdpt.serving.browser',
                          'tools/serve_screenshot.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('url')
    parser.add_argument('--task', required=True,
                        help="a task of the page, or 'zero-shot'")
    parser.add_argument('--images', nargs='+', required=True)
    parser.add_argument('--classes', default='',
                        help='class names, for zero-shot')
    parser.add_argument('--score-thr', type=float)
    parser.add_argument('--out', required=True, help='the screenshot (PNG)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        page = browser.detect_in_browser(args.url, args.task, args.images,
                                 classes=args.classes,
                                 score_thr=args.score_thr,
                                 screenshot=args.out)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    print(page.messages)
    for image in page.payload.get('images', []):
        counts = {k: len(image[k]['detections'])
                  for k in ('base', 'tuned') if image.get(k)}
        print(f'{image["name"]}: ' + ', '.join(
            f'{k} {n} detections' for k, n in counts.items()))
    print(f'screenshot: {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
