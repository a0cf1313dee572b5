"""Every config keeps the runtime's hooks (configs/_base_/
prompt_tuning_runtime.py).

A config that writes ``custom_hooks = [...]`` replaces its base's list in
mmengine; one that needs another hook extends the list instead
(``custom_hooks = _base_.custom_hooks + [...]``). The pretraining configs
(configs/transfer/pretrain_*) keep them too: with ``prompt=None`` and
``extra_trainable=['.*']`` PromptTuningHook allows every parameter to train
and saves whole checkpoints.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT

RUNTIME_HOOKS = ('PromptTuningHook', 'FiniteLossHook', 'RandomStateHook',
                 'TrainCostHook')


def _configs():
    root = osp.join(REPO_ROOT, 'configs')
    paths = glob.glob(osp.join(root, '**', '*.py'), recursive=True)
    return sorted(
        osp.relpath(p, REPO_ROOT) for p in paths
        if '_base_' not in osp.relpath(p, root).split(osp.sep))


CONFIGS = _configs()


def test_every_kind_of_config_is_checked():
    # the glob finds the configs that write their own hooks and those that
    # train every parameter, and leaves the bases out
    for path in ('configs/sdpt_glip_coco_1shot.py',
                 'configs/odinw/sdpt_glip_odinw13.py',
                 'configs/lvis/sdpt_gdino_lvis_minival.py',
                 'configs/custom/sdpt_glip_custom.py',
                 'configs/demo/zoo/full_ft_gdino_tiny_demo.py',
                 'configs/transfer/pretrain_glip_tiny_synthetic.py'):
        assert path in CONFIGS
    assert not any('_base_' in p for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_keeps_the_runtime_hooks(path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, path))
    types = [hook['type'] for hook in cfg.get('custom_hooks', [])]
    for hook in RUNTIME_HOOKS:
        assert types.count(hook) == 1, (hook, types)
