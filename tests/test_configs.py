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


ZOO_TYPES = {
    'zero_shot': None,
    'full_ft': None,
    'text': 'TextContextPrompt',
    'visual': 'VisualDeepPrompt',
    'dpt': 'DPTPrompt',
    'independent_dual': 'IndependentDualPrompt',
    'sdpt_reference': 'SDPTPrompt',
}
ZOO_BASES = {
    'zoo/{}_glip_coco_1shot.py': 'sdpt_glip_coco_1shot.py',
    'zoo/{}_gdino_coco_1shot.py': 'sdpt_gdino_coco_1shot.py',
    'demo/zoo/{}_glip_tiny_demo.py': 'demo/sdpt_glip_tiny_demo.py',
    'demo/zoo/{}_gdino_tiny_demo.py': 'demo/sdpt_gdino_tiny_demo.py',
}


@pytest.mark.parametrize('pattern', sorted(ZOO_BASES))
def test_zoo_configs_change_only_the_method(pattern):
    """Every method runs on its base config's detector, data and schedule."""
    base = Config.fromfile(osp.join(REPO_ROOT, 'configs', ZOO_BASES[pattern]))
    for method, prompt_type in ZOO_TYPES.items():
        cfg = Config.fromfile(
            osp.join(REPO_ROOT, 'configs', pattern.format(method)))
        prompt = cfg.model.prompt
        assert (prompt and prompt.type) == prompt_type, method
        assert cfg.model.detector == base.model.detector
        for key in ('train_dataloader', 'test_dataloader', 'train_cfg',
                    'load_from', 'custom_hooks', 'test_evaluator'):
            assert cfg[key] == base[key], (method, key)
        if not (method == 'full_ft' and 'demo' in pattern):
            assert cfg.optim_wrapper == base.optim_wrapper, method
        assert cfg.experiment.detector == base.experiment.detector
        assert cfg.get('evaluate_only', False) == (method == 'zero_shot')
        if method == 'full_ft':
            assert cfg.model.extra_trainable == ['.*']
        if method == 'sdpt_reference':
            assert prompt.mode == 'reference'
