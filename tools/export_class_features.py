"""Write the learned class features of a prompt checkpoint one file per
class, as mmdet's projects/GroundingdinoPT serves them.

    python tools/export_class_features.py PROMPT.pth OUT_DIR

PROMPT.pth: a prompt checkpoint of LearnedClassFeatures
(configs/zoo/class_features_*.py). Each class gets OUT_DIR/<class>.pth
holding {class name: {'embedding': (M, width) tensor}}.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.checkpoint.class_feature_files import export_class_features
from projects.sdpt.cli import user_errors


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('checkpoint')
    parser.add_argument('out_dir')
    args = parser.parse_args(argv)
    with user_errors():
        paths = export_class_features(args.checkpoint, args.out_dir)
    for name, path in paths.items():
        print(f'{name}: {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
