"""Every method of the zoo (projects/sdpt/methods/) on tiny GLIP and Grounding
DINO: only its own parameters train, switched off it is the base detector
exactly, batches of two keep each image's shapes and masks, its checkpoint
holds only the method. One row of helpers.METHODS a method."""
import re

import pytest
import torch
from helpers import (
    DETECTORS,
    METHODS,
    build_base,
    build_method,
    demo_config,
    make_batch,
    raw_train_batch,
    save_prompt_checkpoint,
)
from helpers import predict as _predict

from projects.sdpt.checkpoint.prompt_checkpoint import (
    PromptCheckpointMismatch,
    check_prompt_checkpoint,
)
from projects.sdpt.methods import DetectorSubsetMethod, registered_methods
from projects.sdpt.methods.trainable import allowed_trainable_names

# Methods whose parameters start at zero, so that the untrained method is the
# base detector (test_zero_initialised_methods_start_as_the_base_detector).
ZERO_INITIALISED = ('language_prompt', 'lora', 'fusion_adapter')


def _same(a, b):
    return all(
        torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


@pytest.fixture(scope='module', params=DETECTORS)
def base(request, demo_root):
    name = request.param
    model = build_base(name, demo_root)
    # frozen like the prompted models (see test_sdpt.py: kernels differ in the
    # last bits when parameters require grad)
    model.requires_grad_(False)
    cfg = demo_config(name, demo_root)
    batch = make_batch(model, demo_root, cfg=cfg)
    return name, model, batch, _predict(model, batch)


@pytest.mark.slow
@pytest.mark.parametrize('method', list(METHODS))
def test_method_off_is_the_base_model_and_on_changes_it(method, base,
                                                        demo_root):
    name, base_model, batch, expected = base
    model, _ = build_method(name, demo_root, METHODS[method])
    missing, unexpected = model.load_state_dict(
        base_model.state_dict(), strict=False)
    assert not unexpected
    assert all(k.startswith('prompt_tuning.') for k in missing)
    if isinstance(model.prompt_tuning, DetectorSubsetMethod):
        # Linear probing and BitFit train some of the detector's own
        # parameters and add no computation: with the base weights the model
        # is the base detector, and there is no "off" to switch to (what they
        # change: test_training_changes_only_the_method_parameters).
        assert _same(_predict(model, batch), expected)
        with pytest.raises(RuntimeError, match='nothing to switch off'):
            model.prompt_tuning.enabled = False
        return
    model.prompt_tuning.enabled = False
    assert _same(_predict(model, batch), expected)
    model.prompt_tuning.enabled = True
    assert not _same(_predict(model, batch), expected)
    model.prompt_tuning.detach()
    assert _same(_predict(model, batch), expected)


@pytest.mark.slow
@pytest.mark.parametrize('method', list(METHODS))
@pytest.mark.parametrize('name', DETECTORS)
def test_training_changes_only_the_method_parameters(name, method,
                                                     demo_root):
    model, cfg = build_method(name, demo_root, METHODS[method])
    model.init_weights()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    named = dict(model.named_parameters())
    trainable = [n for n, p in named.items() if p.requires_grad]
    # the method's own parameters, and the detector's that it names
    assert trainable and set(trainable) == set(allowed_trainable_names(model))
    optimizer = torch.optim.SGD([named[n] for n in trainable], lr=10.0)
    model.train()
    batch = raw_train_batch(demo_root, cfg)
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    if method.startswith('dpt'):
        assert 'loss_class_aware' in losses
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n in trainable if named[n].grad is None]
    assert not no_grad, f'no gradient reached {no_grad}'
    optimizer.step()
    changed = {
        k for k, v in model.state_dict().items()
        if not torch.equal(v, before[k])
    }
    assert changed and changed <= set(trainable), changed - set(trainable)


@pytest.mark.slow
@pytest.mark.parametrize('method', [
    'text_per_class', 'visual', 'dpt', 'language_prompt', 'lora_head',
    'fusion_adapter', 'maple', 'class_features'
])
@pytest.mark.parametrize('name', DETECTORS)
def test_batch_of_two_gives_each_image_its_predictions_alone(
        name, method, demo_root):
    model, cfg = build_method(name, demo_root, METHODS[method])
    model.init_weights()
    together = _predict(model, make_batch(model, demo_root, (1, 2), cfg=cfg))
    alone = _predict(model, make_batch(model, demo_root, (1, ), cfg=cfg)) + \
        _predict(model, make_batch(model, demo_root, (2, ), cfg=cfg))
    for (boxes_a, scores_a, labels_a), (boxes_b, scores_b,
                                        labels_b) in zip(together, alone):
        torch.testing.assert_close(scores_a, scores_b, atol=1e-5, rtol=1e-4)
        # Random weights give near-tied scores, whose order in the top-k
        # may follow the summation order (batch size, threads): compare the
        # (label, box) sets of each group of tied scores.
        together_rows = _tie_groups(scores_a, labels_a, boxes_a)
        alone_rows = _tie_groups(scores_a, labels_b, boxes_b)
        assert together_rows[:, 0].tolist() == alone_rows[:, 0].tolist()
        torch.testing.assert_close(together_rows, alone_rows, atol=1e-4,
                                   rtol=1e-4)


def _tie_groups(scores, labels, boxes, tol=1e-4):
    """(label, box) rows, sorted within each run of tied scores."""
    rows, start = [], 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or abs(float(scores[i] - scores[i - 1])) > tol:
            rows += sorted(
                ([float(labels[j])] + boxes[j].tolist()
                 for j in range(start, i)),
                key=lambda r: [r[0]] + [round(v, 1) for v in r[1:]])
            start = i
    return torch.tensor(rows)


# the option that sets a method's size, where it has one
SIZE_OPTION = {
    'text': 'num_context', 'visual': 'num_tokens',
    'independent_dual': 'num_tokens', 'language_prompt': 'num_positions',
    'lora': 'rank', 'fusion_adapter': 'bottleneck', 'maple': 'num_context',
    'class_features': 'num_tokens'
}


@pytest.mark.parametrize('method', [
    'text', 'visual', 'dpt', 'independent_dual', 'language_prompt',
    'linear_probe', 'bitfit', 'lora', 'fusion_adapter', 'maple',
    'class_features'
])
def test_checkpoint_holds_only_the_method_and_refuses_other_methods(
        method, demo_root):
    model, _ = build_method('gdino', demo_root, METHODS[method])
    checkpoint = save_prompt_checkpoint(model, load_from='base.pth')
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(checkpoint['state_dict']) == trainable
    meta = checkpoint['meta']['prompt_tuning']
    assert meta['method'] == type(model.prompt_tuning).__name__
    check_prompt_checkpoint(meta, model, 'ckpt.pth')  # its own: loads
    other, _ = build_method('gdino', demo_root, METHODS['sdpt'])
    with pytest.raises(PromptCheckpointMismatch, match='method: '):
        check_prompt_checkpoint(meta, other, 'ckpt.pth')
    bigger = dict(METHODS[method])
    key = SIZE_OPTION.get(method)
    if key:
        bigger[key] += 1
        resized, _ = build_method('gdino', demo_root, bigger)
        with pytest.raises(PromptCheckpointMismatch, match=key):
            check_prompt_checkpoint(meta, resized, 'ckpt.pth')


@pytest.mark.parametrize('method', ZERO_INITIALISED)
def test_zero_initialised_methods_start_as_the_base_detector(method, base,
                                                             demo_root):
    """Untrained (unperturbed), the language offset, LoRA and the fusion
    adapters add exact zeros: the detector is the base one, bit for bit."""
    name, base_model, batch, expected = base
    model, _ = build_method(name, demo_root, METHODS[method], perturb=False)
    model.load_state_dict(base_model.state_dict(), strict=False)
    assert model.prompt_tuning.enabled
    assert _same(_predict(model, batch), expected)


@pytest.mark.parametrize('name', DETECTORS)
def test_detector_subset_methods_train_exactly_their_parameters(
        name, demo_root):
    """Linear probing: the final prediction layers (README's list); BitFit:
    every parameter called ``bias``, and nothing else."""
    expected = {
        'glip': {
            f'bbox_head.head.{p}'
            for p in ('bbox_pred.weight', 'bbox_pred.bias',
                      'centerness.weight', 'centerness.bias',
                      'dot_product_projection_text.weight',
                      'dot_product_projection_text.bias', 'log_scale',
                      'bias_lang', 'bias0')
        },
        'gdino': None,  # every parameter of the cls / reg branches
    }[name]
    model, _ = build_method(name, demo_root, METHODS['linear_probe'])
    names = [n for n, _ in model.named_parameters()]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if expected is None:
        expected = {
            n for n in names
            if re.match(r'bbox_head\.(cls|reg)_branches\.\d+\.', n)
        }
        assert any(n.endswith('log_scale') for n in expected)
    assert trainable == expected
    model, _ = build_method(name, demo_root, METHODS['bitfit'])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in names if n.split('.')[-1] == 'bias'}
    # from the text encoder to the head
    assert any(n.startswith('language_model.') for n in trainable)
    assert any(n.startswith('backbone.') for n in trainable)
    assert any(n.startswith('bbox_head.') for n in trainable)


def test_every_registered_method_has_a_row_in_this_matrix():
    """A new method is tested here once it has a row in helpers.METHODS."""
    assert set(registered_methods()) <= {m['type'] for m in METHODS.values()}
