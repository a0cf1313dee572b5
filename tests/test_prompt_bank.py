"""The prompt bank: tasks with their own prompts and classes share one tiny
GLIP / Grounding DINO; a batch mixing tasks gives each image what it gets
alone, switching tasks reloads nothing, and the prompt projections are
computed once per task (projects/sdpt/inference/prompt_bank.py)."""
import pytest
import torch
from helpers import build_base, build_with_prompt, save_prompt_checkpoint
from mmengine.dataset import pseudo_collate

from projects.sdpt.checkpoint.prompt_checkpoint import (
    BaseWeightsMismatch,
    PromptCheckpointMismatch,
)
from projects.sdpt.inference.images import read_image, split_test_pipeline
from projects.sdpt.inference.prompt_bank import PromptBank, PromptBankError

METHODS = {
    'sdpt': dict(type='SDPTPrompt', num_tokens=4),
    'text': dict(type='TextContextPrompt', num_context=3),
    'independent_dual': dict(type='IndependentDualPrompt', num_tokens=4),
}
# Different class lists, of different caption lengths: Grounding DINO then
# pads the shorter caption in a mixed batch. (Three classes each: the tiny
# Grounding DINO's 100 queries x 2 classes are fewer than the 300 boxes its
# head keeps, which mmdet's top-k refuses.)
TASKS = {
    'shapes': ('circle', 'square', 'triangle'),
    'two': ('triangle', 'round circle', 'big square'),
}


def _build(name, demo_root, prompt, seed=0):
    model, cfg = build_with_prompt(name, demo_root, prompt, seed)
    base = build_base(name, demo_root)  # the same base for every model
    model.load_state_dict(base.state_dict(), strict=False)
    return model.eval(), cfg


def _task_checkpoint(model, classes, seed):
    """A prompt checkpoint (with its card) of random prompts."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.prompt_tuning.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return save_prompt_checkpoint(model, iter=9, classes=classes,
                                  load_from='base.pth')


def _data(cfg, demo_root, image, classes):
    loader, pipeline = split_test_pipeline(
        cfg.test_dataloader.dataset.pipeline)
    path = str(demo_root / 'data' / 'demo' / 'shapes' / 'val' /
               f'val_{image:04d}.png')
    results = read_image(loader, path)
    results.update(img_id=image, text=tuple(classes), custom_entities=True)
    return pipeline(results)


def _predict(model, datas):
    with torch.no_grad():
        return model.test_step(pseudo_collate(datas))


def _same(a, b):
    pa, pb = a.pred_instances, b.pred_instances
    torch.testing.assert_close(pa.scores, pb.scores, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pa.bboxes, pb.bboxes, atol=1e-3, rtol=1e-4)
    assert torch.equal(pa.labels, pb.labels)
    assert list(pa.label_names) == list(pb.label_names)


@pytest.mark.parametrize('detector,method', [
    ('glip', 'sdpt'), ('gdino', 'sdpt'), ('glip', 'text'), ('gdino', 'text'),
    ('gdino', 'independent_dual')])
def test_mixed_batch_equals_each_task_alone(detector, method, demo_root):
    model, cfg = _build(detector, demo_root, METHODS[method])
    checkpoints = {
        name: _task_checkpoint(model, classes, seed)
        for seed, (name, classes) in enumerate(TASKS.items())}
    # each task alone: its prompts loaded into the detector, its images
    images = {'shapes': [1, 3], 'two': [2]}
    alone = {}
    for name, classes in TASKS.items():
        model.load_state_dict(checkpoints[name]['state_dict'], strict=False)
        for image in images[name]:
            alone[image] = _predict(
                model, [_data(cfg, demo_root, image, classes)])[0]
    # the bank: both tasks on one detector, images of both in one batch
    with torch.no_grad():
        for param in model.prompt_tuning.parameters():
            param.zero_()  # the bank never reads the method's own values
    detector_params = {n: (p.data_ptr(), p._version)
                       for n, p in model.named_parameters()}
    bank = PromptBank(model)
    for name in TASKS:
        bank.add(name, checkpoints[name])
    assert bank.classes('two') == list(TASKS['two'])
    order = [('shapes', 1), ('two', 2), ('shapes', 3)]
    with bank.selecting([task for task, _ in order]):
        mixed = _predict(model, [
            _data(cfg, demo_root, image, TASKS[task])
            for task, image in order])
    for (task, image), result in zip(order, mixed):
        assert list(result.pred_instances.label_names) == [
            TASKS[task][label] for label in result.pred_instances.labels]
        _same(result, alone[image])
    # switching tasks changed no detector tensor
    assert detector_params == {n: (p.data_ptr(), p._version)
                               for n, p in model.named_parameters()}
    bank.close()


def test_prompt_projections_are_computed_once_per_task(demo_root):
    model, cfg = _build('gdino', demo_root, METHODS['sdpt'])
    bank = PromptBank(model)
    for seed, (name, classes) in enumerate(TASKS.items()):
        bank.add(name, _task_checkpoint(model, classes, seed))
    projected = []  # inputs of v_proj with K rows: the prompt tokens
    attention = model.prompt_tuning.prompted_layers[0].attention
    attention.v_proj.register_forward_hook(
        lambda m, args, out: projected.append(args[0].shape)
        if args[0].dim() == 2 else None)
    datas = [_data(cfg, demo_root, 1, TASKS['shapes']),
             _data(cfg, demo_root, 2, TASKS['two'])]
    for _ in range(3):
        with bank.selecting(['shapes', 'two']):
            _predict(model, datas)
    assert projected == [(4, 256), (4, 256)]  # once per task, then cached
    bank.remove('two')
    assert all(scope != 'two' for scope, *_ in model.prompt_tuning._cache)


def test_bank_refuses_what_it_cannot_serve(demo_root):
    model, _ = _build('glip', demo_root, METHODS['sdpt'])
    good = _task_checkpoint(model, TASKS['shapes'], 0)
    bank = PromptBank(model)
    bank.add('shapes', good)
    with pytest.raises(PromptBankError, match='already has a task'):
        bank.add('shapes', good)
    with pytest.raises(PromptBankError, match="No task 'cars'"):
        with bank.selecting(['cars']):
            pass
    with pytest.raises(PromptBankError, match='no class names'):
        bank.add('nameless', good, classes=[' ', ''])
    # another base: the card's fingerprint differs
    other = dict(good, meta=dict(good['meta']))
    other['meta']['prompt_card'] = dict(good['meta']['prompt_card'],
                                        base_fingerprint='sha256:' + '0' * 64)
    with pytest.raises(BaseWeightsMismatch, match='000000000000'):
        bank.add('other', other)
    bank.add('other', other, allow_base_mismatch=True)
    # another size of the same method
    bigger, _ = _build('glip', demo_root, dict(METHODS['sdpt'],
                                                num_tokens=8))
    with pytest.raises(PromptCheckpointMismatch, match='num_tokens: 8'):
        bank.add('bigger', _task_checkpoint(bigger, TASKS['two'], 1))
    # a batch of another size than the selection
    with pytest.raises(PromptBankError, match='one task per image'):
        with bank.selecting(['shapes']):
            model.prompt_tuning.task_batch.check_batch_size(2)


@pytest.mark.parametrize('prompt,reason', [
    (dict(type='VisualDeepPrompt', num_tokens=2), 'whole batch'),
    (dict(type='TextContextPrompt', num_context=2, class_specific=True,
          classes=TASKS['shapes']), 'class_specific=True'),
])
def test_methods_without_mixed_batches_are_refused(prompt, reason,
                                                   demo_root):
    model, _ = _build('gdino', demo_root, prompt)
    with pytest.raises(PromptBankError) as err:
        PromptBank(model)
    assert reason in str(err.value)
    assert 'IndependentDualPrompt, SDPTPrompt, TextContextPrompt' in str(
        err.value)
