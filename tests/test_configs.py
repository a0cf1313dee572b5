"""The real configs parse, inherit mmdet's and state the paper's settings."""
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT

REAL = {
    'sdpt_glip_coco_1shot.py': ('GLIP', 84, [0], 'synchronous'),
    'sdpt_glip-t-c_coco_1shot.py': ('GLIP', 45, [0], 'synchronous'),
    'sdpt_glip_coco_1shot_refcode.py': ('GLIP', 700, 'all', 'reference'),
    'sdpt_gdino_coco_1shot.py': ('GroundingDINO', 68, [0], 'synchronous'),
}


@pytest.mark.parametrize('name', sorted(REAL))
def test_real_config(name):
    detector, k, layers, mode = REAL[name]
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', name))
    assert cfg.model.type == 'PromptTunedDetector'
    assert cfg.model.detector.type == detector
    assert (cfg.model.prompt.num_tokens, cfg.model.prompt.layers,
            cfg.model.prompt.mode) == (k, layers, mode)
    assert {'type': 'PromptTuningHook'} in cfg.custom_hooks
    assert cfg.load_from.startswith('https://download.openmmlab.com/')
    assert cfg.model.detector.language_model.name == 'bert-base-uncased'
    # the paper's recipe
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.lr == 1e-5
    assert cfg.optim_wrapper.clip_grad.max_norm == 1.0
    assert cfg.train_cfg.max_iters == 2000
    assert cfg.train_dataloader.batch_size == 1
    assert cfg.train_dataloader.dataset.ann_file.endswith('1shot_seed3.json')
    # activation checkpointing stays on as in mmdet's configs
    if detector == 'GLIP':
        assert cfg.model.detector.bbox_head.use_checkpoint
    else:
        assert cfg.model.detector.encoder.num_cp == 6


ZOO_BASES = {
    ('real', 'glip'): 'sdpt_glip_coco_1shot.py',
    ('real', 'gdino'): 'sdpt_gdino_coco_1shot.py',
    ('demo', 'glip'): 'demo/sdpt_glip_tiny_demo.py',
    ('demo', 'gdino'): 'demo/sdpt_gdino_tiny_demo.py',
}


@pytest.mark.parametrize('tier,det', sorted(ZOO_BASES))
def test_zoo_has_every_registered_method(tier, det):
    """The zoo's config files list the methods: each registered method has
    one on every detector and tier, and the references are there."""
    from projects.sdpt.experiments.zoo import zoo_config, zoo_methods
    from projects.sdpt.methods import registered_methods
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


@pytest.mark.parametrize('tier,det', sorted(ZOO_BASES))
def test_zoo_configs_change_only_the_method(tier, det):
    """Every method runs on its base config's detector, data and schedule."""
    from projects.sdpt.experiments.zoo import zoo_config, zoo_methods
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


DEMO = ('demo/sdpt_glip_tiny_demo.py', 'demo/sdpt_gdino_tiny_demo.py')
# what each demo config takes as it is from the shapes_<key> of the data base
# (default_hooks and log_processor are merged into the mmdet base's)
DEMO_DATA = ('data_root', 'metainfo', 'img_scale', 'train_pipeline',
             'test_pipeline', 'train_dataloader', 'val_dataloader',
             'val_evaluator', 'max_iters', 'train_cfg', 'param_scheduler',
             'optim_wrapper', 'auto_scale_lr')


def _without_delete(value):
    if isinstance(value, dict):
        return {k: _without_delete(v) for k, v in value.items()
                if k != '_delete_'}
    if isinstance(value, list):
        return [_without_delete(v) for v in value]
    return value


def test_demo_configs_share_the_shapes_data():
    """Both demo detectors train and test on the same data and schedule,
    those of configs/demo/_base_/shapes_demo_data.py, which replace the mmdet
    bases' (COCO, epoch-based) ones."""
    glip, gdino = (Config.fromfile(osp.join(REPO_ROOT, 'configs', p))
                   for p in DEMO)
    for key in DEMO_DATA:
        assert glip[key] == gdino[key], key
        assert glip[key] == _without_delete(glip['shapes_' + key]), key
    for key in ('test_dataloader', 'test_evaluator', 'default_hooks',
                'log_processor'):
        assert glip[key] == gdino[key], key
    assert glip.test_dataloader == glip.val_dataloader
    assert glip.test_evaluator == glip.val_evaluator
    dataset = glip.train_dataloader.dataset
    assert dataset.data_root == 'data/demo/shapes/'
    assert dataset.ann_file == 'annotations/instances_train.json'
    assert glip.val_evaluator.ann_file == \
        'data/demo/shapes/annotations/instances_val.json'
    assert dict(glip.train_cfg) == dict(
        type='IterBasedTrainLoop', max_iters=40, val_interval=40)
    # nothing of the mmdet bases' data is left over
    assert set(glip.val_evaluator) == {
        'type', 'ann_file', 'metric', 'format_only'}
    assert set(glip.optim_wrapper) == {'type', 'optimizer', 'clip_grad'}
