"""The configs of configs/: the real ones parse, inherit mmdet's and state
the paper's settings; the demo detectors share the shapes data; every config
keeps the runtime's hooks."""
import glob
import os.path as osp

import pytest
from helpers import REPO_ROOT
from mmengine.config import Config

from projects.sdpt.engine.config import without_yapf

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


# ---- the runtime's hooks (configs/_base_/prompt_tuning_runtime.py) ---------
# A config that writes ``custom_hooks = [...]`` replaces its base's list in
# mmengine; one that needs another hook extends the list instead
# (``custom_hooks = _base_.custom_hooks + [...]``). The pretraining configs
# (configs/transfer/pretrain_*) keep them too: with ``prompt=None`` and
# ``extra_trainable=['.*']`` PromptTuningHook allows every parameter to train
# and saves whole checkpoints.
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


def test_a_config_without_yapf_gives_the_same_config():
    """The transfer suite's runs skip mmengine's yapf formatting (seconds
    a run): the text they dump and log must load back as the same config."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'transfer',
                                   'gdino_tiny_synthetic.py'))
    plain = without_yapf(cfg)
    assert plain.pretty_text != cfg.pretty_text  # not formatted, yet:
    assert Config.fromstring(plain.pretty_text, '.py').to_dict() == \
        Config.fromstring(cfg.pretty_text, '.py').to_dict() == cfg.to_dict()
    assert plain.filename == cfg.filename
