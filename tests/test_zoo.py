"""The method zoo (projects/sdpt/experiments/zoo.py): its config files list
the methods, each runs on its base config's detector, data and schedule."""
import os.path as osp

import pytest
from helpers import REPO_ROOT
from mmengine.config import Config

from projects.sdpt.experiments.zoo import zoo_config, zoo_methods
from projects.sdpt.methods import registered_methods

ZOO_BASES = {
    ('real', 'glip'): 'sdpt_glip_coco_1shot.py',
    ('real', 'gdino'): 'sdpt_gdino_coco_1shot.py',
    ('demo', 'glip'): 'demo/sdpt_glip_tiny_demo.py',
    ('demo', 'gdino'): 'demo/sdpt_gdino_tiny_demo.py',
}


@pytest.mark.slow
@pytest.mark.parametrize('tier,det', sorted(ZOO_BASES))
def test_zoo_has_every_registered_method(tier, det):
    """The zoo's config files list the methods: each registered method has
    one on every detector and tier, and the references are there."""
    methods = zoo_methods(det, tier)
    assert methods[:2] == ['zero_shot', 'full_ft']
    types = {(Config.fromfile(zoo_config(m, det, tier)).model.prompt
              or {}).get('type') for m in methods}
    assert set(registered_methods()) <= types


def _without_lr_and_decay(optim_wrapper):
    optim_wrapper = optim_wrapper.to_dict()
    for key in ('lr', 'weight_decay'):
        optim_wrapper['optimizer'].pop(key, None)
    return optim_wrapper


@pytest.mark.slow
@pytest.mark.parametrize('tier,det', sorted(ZOO_BASES))
def test_zoo_configs_change_only_the_method(tier, det):
    """Every method runs on its base config's detector, data and schedule."""
    base = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', ZOO_BASES[(tier, det)]))
    for method in zoo_methods(det, tier):
        cfg = Config.fromfile(zoo_config(method, det, tier))
        prompt = cfg.model.prompt
        assert (prompt is None) == (method in ('zero_shot', 'full_ft'))
        assert cfg.model.detector == base.model.detector
        for key in ('train_dataloader', 'test_dataloader', 'train_cfg',
                    'load_from', 'custom_hooks', 'test_evaluator'):
            assert cfg[key] == base[key], (method, key)
        # a method may bring its own learning rate and weight decay (full
        # fine-tuning on the demo, GLIP's language prompt), nothing else
        assert _without_lr_and_decay(cfg.optim_wrapper) == \
            _without_lr_and_decay(base.optim_wrapper), method
        assert cfg.experiment.detector == base.experiment.detector
        assert cfg.get('evaluate_only', False) == (method == 'zero_shot')
        if method == 'full_ft':
            assert cfg.model.extra_trainable == ['.*']
        if method == 'sdpt_reference':
            assert prompt.mode == 'reference'
        if method == 'language_prompt':  # GLIP's recipe
            assert (cfg.optim_wrapper.optimizer.lr,
                    cfg.optim_wrapper.optimizer.weight_decay) == (0.05, 0.25)
