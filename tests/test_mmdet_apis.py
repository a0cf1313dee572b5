"""A prompt checkpoint through mmdet's and mmengine's own doors: DetInferencer,
init_detector + inference_detector, load_checkpoint and torch.load +
load_state_dict load the same whole model as tools/infer.py's API (the base
completed from the weights the checkpoint names, checked against its card),
on both tiny detectors, for SDPT and for a method that trains detector
weights (BitFit); a missing or different base is a named error. Also what a
new user's small dataset meets: one class, classes given as a list, an empty
image file."""
import copy
import os.path as osp

import pytest
import torch
from helpers import (
    DEMO_CONFIGS,
    METHODS,
    SHAPES,
    demo_config,
    perturb_zero_initialised,
    run,
    save_base_weights,
    save_prompt_checkpoint,
)
from mmcv.transforms import LoadImageFromFile
from mmdet.apis import DetInferencer, inference_detector, init_detector
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from projects.sdpt.checkpoint import BaseWeightsMismatch
from projects.sdpt.checkpoint.load_completion import (
    STATE_MARKER,
    BaseWeightsNotFound,
)
from projects.sdpt.engine.config import load_config
from projects.sdpt.inference import PromptInferencer
from projects.sdpt.inference.images import BadImage, read_image

CAPTION = ' . '.join(SHAPES) + ' .'


def _trained(name, demo_root, method, root):
    """A config file, base weights and a prompt checkpoint of ``method`` on
    the demo detector ``name``, saved as a training run saves them; the
    tuned values differ from the initial ones."""
    cfg = demo_config(name, demo_root)
    cfg.model.prompt = METHODS[method]
    config = str(root / 'config.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    # Without it, parameters that only init_weights fills (level_embed) keep
    # whatever torch.empty found, NaN included, and the comparisons flake.
    model.init_weights()
    base = save_base_weights(model, root / 'base.pth')
    perturb_zero_initialised(model.prompt_tuning)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    prompt = str(root / 'prompt.pth')
    save_prompt_checkpoint(model, prompt, load_from=base, base_weights=base,
                           classes=list(SHAPES))
    return config, base, prompt, model.state_dict()


@pytest.fixture(scope='module', params=[
    ('gdino', 'sdpt'), ('gdino', 'bitfit'), ('glip', 'sdpt'),
    ('glip', 'bitfit')], ids=lambda p: '-'.join(p))
def tuned(request, demo_root, tmp_path_factory):
    name, method = request.param
    root = tmp_path_factory.mktemp(f'{name}_{method}')
    config, base, prompt, state = _trained(name, demo_root, method, root)
    image = str(demo_root / 'data' / 'demo' / 'shapes' / 'val' /
                'val_0001.png')
    ours = PromptInferencer.from_files(config, base_weights=base,
                                       prompt=prompt)
    [record] = ours([image], score_thr=0.0, show_progress=False).predictions
    return dict(name=name, config=config, base=base, prompt=prompt,
                state=state, image=image, ours=ours, record=record)


def _same_state(model, expected):
    own = model.state_dict()
    assert set(own) == set(expected)
    for key, value in expected.items():
        assert torch.equal(own[key], value), key


def _same_detections(instances, record, top=10):
    ours = record['detections'][:top]
    assert instances.labels[:top].tolist() == [d['label'] for d in ours]
    torch.testing.assert_close(instances.scores[:top],
                               torch.tensor([d['score'] for d in ours]),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(instances.bboxes[:top],
                               torch.tensor([d['bbox'] for d in ours]),
                               atol=0.01, rtol=0)


@pytest.mark.slow
def test_load_checkpoint_and_torch_load_complete_the_base(tuned):
    # tools/infer.py's API loads exactly what training saved over the base
    _same_state(tuned['ours'].model, tuned['state'])
    cfg = Config.fromfile(tuned['config'])
    model = MODELS.build(copy.deepcopy(cfg.model))
    load_checkpoint(model, tuned['prompt'], map_location='cpu')
    _same_state(model, tuned['state'])
    # a plain torch.load keeps the metadata the state dict carries
    model = MODELS.build(copy.deepcopy(cfg.model))
    checkpoint = torch.load(tuned['prompt'], weights_only=True)
    model.load_state_dict(checkpoint['state_dict'], strict=False)
    _same_state(model, tuned['state'])


@pytest.mark.slow
def test_det_inferencer_equals_tools_infer(tuned):
    inferencer = DetInferencer(model=tuned['config'], weights=tuned['prompt'],
                               device='cpu', show_progress=False)
    _same_state(inferencer.model, tuned['state'])
    result = inferencer(tuned['image'], texts=CAPTION, custom_entities=True,
                        return_datasamples=True)
    _same_detections(result['predictions'][0].pred_instances,
                     tuned['record'])


@pytest.mark.slow
def test_init_detector_equals_tools_infer(tuned):
    model = init_detector(tuned['config'], tuned['prompt'], device='cpu')
    _same_state(model, tuned['state'])
    assert model.dataset_meta['classes'] == SHAPES  # not COCO's
    result = inference_detector(model, tuned['image'], text_prompt=CAPTION,
                                custom_entities=True)
    _same_detections(result.pred_instances, tuned['record'])


@pytest.mark.slow
def test_missing_or_other_base_is_a_named_error(demo_root, tmp_path):
    config, base, prompt, _ = _trained('gdino', demo_root, 'sdpt', tmp_path)
    cfg = Config.fromfile(config)
    moved = str(tmp_path / 'elsewhere.pth')
    torch.save(torch.load(base, weights_only=True), moved)
    (tmp_path / 'base.pth').unlink()
    with pytest.raises(BaseWeightsNotFound, match=r'base\.pth') as err:
        load_checkpoint(MODELS.build(copy.deepcopy(cfg.model)), prompt)
    assert 'prompt.pth' in str(err.value)
    assert 'model.base_weights' in str(err.value)
    # named by the config: loads
    cfg.model.base_weights = moved
    load_checkpoint(MODELS.build(copy.deepcopy(cfg.model)), prompt)
    # other base weights: the card's fingerprint refuses them
    state = torch.load(moved, weights_only=True)
    state['state_dict']['text_feat_map.bias'] += 0.01
    torch.save(state, moved)
    with pytest.raises(BaseWeightsMismatch, match='fingerprint'):
        load_checkpoint(MODELS.build(copy.deepcopy(cfg.model)), prompt)


@pytest.mark.slow
def test_checkpoint_saved_without_the_marker(demo_root, tmp_path):
    """A prompt checkpoint saved before its state dict carried its metadata:
    mmengine's loader (the project's) completes it; a bare state dict warns
    that the base stays as it is."""
    config, _, prompt, state = _trained('gdino', demo_root, 'sdpt', tmp_path)
    checkpoint = torch.load(prompt, weights_only=True)
    assert STATE_MARKER in checkpoint['state_dict']._metadata['']
    checkpoint['state_dict'] = dict(checkpoint['state_dict'])
    torch.save(checkpoint, prompt)
    cfg = Config.fromfile(config)
    model = MODELS.build(copy.deepcopy(cfg.model))
    load_checkpoint(model, prompt)
    _same_state(model, state)
    model = MODELS.build(copy.deepcopy(cfg.model))
    with pytest.warns(UserWarning, match='frozen weights stay as they are'):
        model.load_state_dict(checkpoint['state_dict'], strict=False)


@pytest.mark.slow
def test_one_class_dataset_given_as_a_list_trains_and_evaluates(workspace):
    """One class of the shapes set, written as a list on the command line:
    the tiny Grounding DINO (100 queries, max_per_img 300) trains and
    evaluates."""
    work_dir = workspace / 'work_dirs' / 'one_class'
    result = run(
        'train.py', DEMO_CONFIGS['gdino'], '--work-dir',
        str(work_dir), '--cfg-options',
        'train_dataloader.dataset.metainfo.classes=[circle]',
        'val_dataloader.dataset.metainfo.classes=[circle]',
        'test_dataloader.dataset.metainfo.classes=[circle]',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2', cwd=workspace)
    assert 'coco/bbox_mAP' in result.out
    assert osp.isfile(work_dir / 'iter_2.pth')


def test_classes_given_as_a_list_become_a_tuple():
    cfg = load_config('configs/demo/sdpt_gdino_tiny_demo.py', {
        'train_dataloader.dataset.metainfo.classes': ['raccoon'],
        'val_dataloader.dataset.metainfo.classes': ['raccoon', 'dog']})
    assert cfg.train_dataloader.dataset.metainfo.classes == ('raccoon', )
    assert cfg.val_dataloader.dataset.metainfo.classes == ('raccoon', 'dog')


def test_an_empty_image_file_is_skipped_with_its_reason(tmp_path):
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with pytest.raises(BadImage, match='empty file'):
        read_image(LoadImageFromFile(), str(empty))
