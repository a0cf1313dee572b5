r"""Write a benchmark config resolved for one setting to a file.

    python tools/make_config.py configs/odinw/sdpt_glip_odinw13.py \
        --cfg-options dataset=Aquarium shots=3 seed=30 \
        [--out work_dirs/sdpt_glip_odinw13/Aquarium/3shot_seed30/config.py]

tools/train.py and tools/test.py resolve benchmark configs themselves; the
written file (plain mmengine config, data fields filled in, ``benchmark``
removed) is for reading, or for tools that do not (e.g. mmdet's own). The
default output is ``config.py`` in the setting's default work dir.
"""
import argparse
import os
import os.path as osp

import _bootstrap  # noqa: F401

from mmengine.config import DictAction

from projects.sdpt.cli import default_work_dir
from projects.sdpt.engine.config import load_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='the setting (dataset=, shots=, seed=) and any '
                        'other override, key=value')
    parser.add_argument('--out', help='output .py file')
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    # Resolved once: a second resolution would only repeat it.
    cfg.pop('benchmark', None)
    out = args.out or osp.join(default_work_dir(args.config, cfg),
                               'config.py')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    cfg.dump(out)
    setting = cfg.get('setting') or {}
    print(f'wrote {out}' + (f' ({setting["name"]})' if setting else ''))


if __name__ == '__main__':
    main()
