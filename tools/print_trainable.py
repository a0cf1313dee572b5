"""Build a config's model (no weights loaded) and print what trains.

    python tools/print_trainable.py CONFIG [--lang-model PATH]

``--lang-model`` points the text encoder at a local BERT directory (offline
machines); the counts do not depend on its weights, only on its size.
"""
import argparse

import _bootstrap  # noqa: F401

from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from projects.sdpt.cli import user_errors
from projects.sdpt.detectors.text_encoder import set_text_encoder
from projects.sdpt.engine.config import load_config
from projects.sdpt.methods.trainable import (
    format_report,
    trainable_parameter_report,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--lang-model', help='local BERT directory')
    args = parser.parse_args()
    register_all_modules()
    cfg = load_config(args.config)
    detector = cfg.model.get('detector', cfg.model)
    if args.lang_model:
        set_text_encoder(detector, args.lang_model)
    with user_errors(cfg):
        model = MODELS.build(cfg.model)
    report = trainable_parameter_report(model)
    print(f'{args.config}: {format_report(report)}')
    for name, param in model.named_parameters():
        if param.requires_grad:
            print(f'  {name}: {tuple(param.shape)}')


if __name__ == '__main__':
    main()
