"""What PromptTuningHook (projects/sdpt/engine/hooks/prompt_tuning_hook.py)
refuses to load: a prompt checkpoint of another model, a detector checkpoint
where prompts are expected, a prompt checkpoint given as the base weights;
each with a message naming the file and the difference."""
from types import SimpleNamespace

import pytest
import torch
from helpers import base_checkpoint, build_model
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import BaseLoop

from projects.sdpt.checkpoint.prompt_checkpoint import (
    META_KEY,
    PromptCheckpointMismatch,
)
from projects.sdpt.engine.hooks.prompt_tuning_hook import PromptTuningHook


@pytest.fixture(scope='module')
def glip(demo_root):
    model, cfg = build_model('glip', demo_root)
    return model


def _runner(model, load_from, base_weights='base.pth', training=False,
            resume=False):

    class TrainLoop(BaseLoop):
        def run(self):
            pass

    return SimpleNamespace(
        model=model,
        cfg=Config(dict(load_from=load_from, base_weights=base_weights)),
        logger=MMLogger.get_current_instance(),
        _train_loop=object.__new__(TrainLoop) if training else None,
        _resume=resume)


def _prompt_checkpoint(model, **meta):
    signature = dict(model.prompt_tuning.signature(), full_model=False,
                     base_weights='base.pth')
    signature.update(meta)
    return dict(meta={META_KEY: signature}, state_dict={
        k: v.clone() for k, v in model.state_dict().items()
        if k.startswith('prompt_tuning.')})


@pytest.mark.parametrize('field,value,shown', [
    ('detector', 'GroundingDINO', "detector: 'GroundingDINO' in the "
     "checkpoint vs 'GLIP'"),
    ('num_tokens', 8, 'num_tokens: 8 in the checkpoint vs 16'),
    ('layers', [0, 1], 'layers: [0, 1] in the checkpoint vs [0]'),
    ('method', 'DPTPrompt', "method: 'DPTPrompt' in the checkpoint vs "
     "'SDPTPrompt'"),
])
def test_prompt_checkpoint_of_another_model_is_refused(glip, field, value,
                                                       shown):
    assert glip.prompt_tuning.signature()['layers'] == [0]  # 1 fusion layer
    ckpt = _prompt_checkpoint(glip, **{field: value})
    with pytest.raises(PromptCheckpointMismatch) as err:
        PromptTuningHook().after_load_checkpoint(
            _runner(glip, 'other.pth'), ckpt)
    assert 'other.pth does not match this model' in str(err.value)
    assert shown.split(' vs ')[0] in str(err.value) and \
        shown.split(' vs ')[1] in str(err.value)


def test_detector_checkpoint_where_a_prompt_checkpoint_is_expected(glip):
    detector = base_checkpoint(glip)
    hook = PromptTuningHook()
    # evaluating (tools/test.py) or resuming from it: refused
    for runner in (_runner(glip, 'det.pth'),
                   _runner(glip, 'det.pth', training=True, resume=True),
                   _runner(glip, 'det.pth', training=True)):
        with pytest.raises(PromptCheckpointMismatch,
                           match='det.pth holds no prompt parameters'):
            hook.after_load_checkpoint(runner, dict(detector))
    # as the base weights a training run starts from: fine
    hook.after_load_checkpoint(
        _runner(glip, 'det.pth', base_weights='det.pth', training=True),
        dict(detector))


def test_prompt_checkpoint_where_the_detector_weights_are_expected(
        glip, tmp_path):
    prompt = tmp_path / 'prompt.pth'
    torch.save(_prompt_checkpoint(glip), prompt)
    with pytest.raises(PromptCheckpointMismatch,
                       match='is itself a prompt checkpoint'):
        PromptTuningHook().after_load_checkpoint(
            _runner(glip, str(prompt), base_weights=str(prompt)),
            _prompt_checkpoint(glip))
