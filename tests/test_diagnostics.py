"""The transfer suite's diagnostics (projects/sdpt/evaluation/diagnostics.py)
on tiny GLIP and Grounding DINO (random weights): removing the fusion
residual, switching a method off, how far a method moves the fused features,
and the loss-flatness formula."""
import pytest
import torch
from helpers import DETECTORS, build_base, build_with_prompt, demo_config
from mmdet.datasets import CocoDataset
from mmengine.dataset import pseudo_collate

from projects.sdpt.detectors.adapters import detector_adapter_for
from projects.sdpt.evaluation.diagnostics import (
    fused_feature_change,
    fusion_residual_removed,
    loss_flatness,
    method_disabled,
    prompts_off_check,
    prompts_off_difference,
)

SDPT = dict(type='SDPTPrompt', num_tokens=4)


def build_with_base_weights(name, demo_root, prompt, base):
    """The tiny detector with ``prompt`` and exactly ``base``'s weights."""
    model, _ = build_with_prompt(name, demo_root, prompt, seed=1)
    missing, unexpected = model.load_state_dict(base.state_dict(),
                                                strict=False)
    assert not unexpected
    assert all(k.startswith('prompt_tuning.') for k in missing)
    return model.eval()


def raw_batch(demo_root, cfg, image_ids=(1, 2)):
    """Two demo val images as a data loader yields them (test_step input,
    the form the suite's diagnostics get)."""
    dataset = CocoDataset(
        data_root=str(demo_root / 'data' / 'demo' / 'shapes'),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=('circle', 'square', 'triangle')),
        pipeline=cfg.test_pipeline, return_classes=True, test_mode=True)
    return pseudo_collate([dataset[i - 1] for i in image_ids])


def predictions(model, batch):
    with torch.no_grad():
        out = model.test_step(batch)
    return [(s.pred_instances.bboxes, s.pred_instances.scores,
             s.pred_instances.labels) for s in out]


def same(a, b):
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.equal(x, y)
        for pa, pb in zip(a, b) for x, y in zip(pa, pb))


def gammas(model):
    return {n: p for n, p in model.named_parameters()
            if n.split('.')[-1] in ('gamma_v', 'gamma_l')}


@pytest.fixture(scope='module', params=DETECTORS)
def base(request, demo_root):
    """(name, base detector, raw batch); the base frozen like the tuned
    models, since PyTorch picks other kernels (other last bits) for
    parameters that require grad."""
    name = request.param
    model = build_base(name, demo_root).eval()
    model.requires_grad_(False)
    return name, model, raw_batch(demo_root, demo_config(name, demo_root))


def test_fusion_residual_removed_zeroes_every_gamma_and_restores_it(
        base, demo_root):
    name, base_model, _ = base
    model = build_with_base_weights(name, demo_root, SDPT, base_model)
    found = gammas(model)
    layers = detector_adapter_for(model).fusion_layers(model)
    # one gamma_v and one gamma_l per fusion layer, nothing else
    assert len(found) == 2 * len(layers) > 0
    with torch.no_grad():  # distinct values, so that restoring shows
        for p in found.values():
            p.uniform_(0.5, 1.5)
    saved = {n: p.detach().clone() for n, p in found.items()}
    with fusion_residual_removed(model) as inside:
        assert inside is model
        assert all(not p.any() for p in gammas(model).values())
    now = gammas(model)
    assert all(now[n] is found[n] for n in found)  # same parameters, in place
    assert all(torch.equal(now[n], saved[n]) for n in saved)
    with pytest.raises(KeyError):
        with fusion_residual_removed(model):
            raise KeyError('inside')
    assert all(torch.equal(gammas(model)[n], saved[n]) for n in saved)


@pytest.mark.slow
def test_sdpt_acts_only_through_the_fusion_residual(base, demo_root):
    """With the residual removed, SDPT's tokens (which sit in the fusion
    attention) cannot change anything: the prompted detector predicts
    exactly as the base."""
    name, base_model, batch = base
    model = build_with_base_weights(name, demo_root, SDPT, base_model)
    # Large layer scales make the fusion (and so the tokens) matter.
    shared = {n: p.detach().clone() for n, p in gammas(base_model).items()}
    with torch.no_grad():
        for m in (model, base_model):
            for p in gammas(m).values():
                p.fill_(1.0)
    try:
        assert not same(predictions(model, batch),
                        predictions(base_model, batch))
        with fusion_residual_removed(model), \
                fusion_residual_removed(base_model):
            assert same(predictions(model, batch),
                        predictions(base_model, batch))
    finally:  # the module's base as it was built
        with torch.no_grad():
            for n, p in gammas(base_model).items():
                p.copy_(shared[n])


@pytest.mark.slow
def test_prompts_off_difference_is_zero_for_sdpt_on_the_base_weights(
        base, demo_root):
    name, base_model, batch = base
    model = build_with_base_weights(name, demo_root, SDPT, base_model)
    assert not same(predictions(model, batch), predictions(base_model, batch))
    assert prompts_off_difference(model, base_model, batch) == 0.0
    assert model.prompt_tuning.enabled  # switched on again afterwards
    # Against a base with other weights the difference shows.
    other = build_base(name, demo_root, seed=1).eval()
    other.requires_grad_(False)
    assert prompts_off_difference(model, other, batch) > 0


@pytest.mark.slow
def test_the_off_check_covers_every_batch_and_counts_failures(
        base, demo_root):
    name, base_model, batch = base
    model = build_with_base_weights(name, demo_root, SDPT, base_model)
    check = prompts_off_check(model, base_model, [batch, batch, {}])
    # the broken third batch is counted, not dropped
    assert (check['max_diff'], check['batches'], check['failed']) == \
        (0.0, 3, 1)
    assert check['first_error']
    assert model.prompt_tuning.enabled
    other = build_base(name, demo_root, seed=1).eval()
    assert prompts_off_check(model, other, [batch])['max_diff'] > 0
    bitfit = build_with_base_weights(name, demo_root, dict(type='BitFit'),
                                     base_model)
    assert prompts_off_check(bitfit, base_model, [batch]) is None


@pytest.mark.parametrize('prompt', [dict(type='BitFit'),
                                    dict(type='LinearProbing'), None])
def test_prompts_off_difference_is_none_without_an_off_state(
        prompt, base, demo_root):
    """BitFit and linear probing tune the detector's own weights, full
    fine-tuning has no method at all: none can be switched off."""
    name, base_model, batch = base
    model = build_with_base_weights(name, demo_root, prompt, base_model)
    assert prompts_off_difference(model, base_model, batch) is None


@pytest.mark.slow
def test_fused_feature_change_is_zero_for_the_base_and_positive_with_sdpt(
        base, demo_root):
    name, base_model, batch = base
    model = build_with_base_weights(name, demo_root, SDPT, base_model)
    assert fused_feature_change(base_model, base_model, batch) == {
        'image': 0.0, 'text': 0.0}
    with method_disabled(model):
        assert not model.prompt_tuning.enabled
        assert fused_feature_change(model, base_model, batch) == {
            'image': 0.0, 'text': 0.0}
    assert model.prompt_tuning.enabled
    change = fused_feature_change(model, base_model, batch)
    assert change['image'] > 0 and change['text'] > 0


def test_method_disabled_switches_back_on_after_an_error(base, demo_root):
    name, base_model, _ = base
    model = build_with_base_weights(name, demo_root, SDPT, base_model)
    with pytest.raises(KeyError):
        with method_disabled(model):
            raise KeyError('inside')
    assert model.prompt_tuning.enabled
    # a detector without a method passes through unchanged
    with method_disabled(base_model) as inside:
        assert inside is base_model


def test_loss_flatness_compares_the_last_two_tenths():
    # 20 losses: tenths of 2; the tenth before the last has mean 4, the last
    # mean 3.
    losses = [9.0] * 16 + [5.0, 3.0, 2.0, 4.0]
    assert loss_flatness(losses) == pytest.approx((3.0 - 4.0) / 4.0)
    # 25 losses: still tenths of 2, the first 5 do not count
    assert loss_flatness([100.0] * 5 + losses) == pytest.approx(-0.25)
    # a rising loss gives a positive value, a flat one zero
    assert loss_flatness([1.0] * 8 + [2.0, 3.0]) == pytest.approx(0.5)
    assert loss_flatness([2.0] * 30) == 0.0
    # fewer than 10 losses: no tenth to compare; a zero reference: no ratio
    assert loss_flatness([1.0] * 9) is None
    assert loss_flatness([0.0] * 10 + [0.0] * 10) is None
    assert loss_flatness([]) is None
