"""Write the demo's offline assets under data/demo (idempotent).

Tiny BERT + tokenizer, the synthetic shapes set, and the (random) base weights
of each demo detector, so train and test share one base through load_from.
"""
import argparse
import os.path as osp

import _bootstrap  # noqa: F401

from projects.sdpt.datasets.synthetic.demo_assets import (
    make_base_weights,
    make_demo_assets,
)
from projects.sdpt.utils.paths import REPO_ROOT

DEMO_CONFIGS = {
    'glip_tiny_base.pth': 'configs/demo/sdpt_glip_tiny_demo.py',
    'gdino_tiny_base.pth': 'configs/demo/sdpt_gdino_tiny_demo.py',
}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--root', default='data/demo')
    args = parser.parse_args()
    make_demo_assets(args.root)
    for name, config in DEMO_CONFIGS.items():
        make_base_weights(
            osp.join(REPO_ROOT, config), osp.join(args.root, name),
            osp.join(args.root, 'bert'))
    print(f'demo assets ready in {args.root}')


if __name__ == '__main__':
    main()
