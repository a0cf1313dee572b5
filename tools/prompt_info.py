"""Print the card of a prompt checkpoint.

    python tools/prompt_info.py CHECKPOINT [--json]

The card (written by PromptTuningHook with every prompt checkpoint) names the
method and its signature, the base detector and the fingerprint of the base
weights the prompts were tuned on, the class names in order, the task (k,
seed), the validation metrics at save time, the trainable count and the
toolbox version. ``--json`` prints ``{"signature", "card", "tensors",
"parameters"}`` as JSON. Details: projects/sdpt/engine/prompt_card.py.
"""
import argparse
import json
import os.path as osp
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.checkpoint.prompt_checkpoint import read_checkpoint_meta
from projects.sdpt.cli import format_card, user_errors


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('checkpoint')
    parser.add_argument('--json', action='store_true',
                        help='print the card as JSON')
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'No checkpoint at {args.checkpoint}')
    with user_errors():
        info = read_checkpoint_meta(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(format_card(info, args.checkpoint))
    return 0


if __name__ == '__main__':
    sys.exit(main())
