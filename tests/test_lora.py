"""LoRA (projects/sdpt/methods/lora.py) on the tiny detectors: mmdet's
parameter names kept, merge / unmerge / detach, parameters replaced by a
conversion followed."""
import pytest
import torch
import torch.nn.functional as F
from helpers import DETECTORS, METHODS, build_base, build_method


@pytest.mark.parametrize('name', DETECTORS)
def test_lora_keeps_mmdet_names_merges_and_detaches(name, demo_root):
    """LoRA leaves the detector's parameter names as they are; peft's merge
    folds the updates into the targets' weights (same outputs), unmerge and
    detach give the original weights and forwards back."""
    model, _ = build_method(name, demo_root, METHODS['lora_head'])
    base_model = build_base(name, demo_root)
    detector_keys = {k for k in model.state_dict()
                     if not k.startswith('prompt_tuning.')}
    assert detector_keys == set(base_model.state_dict())
    method = model.prompt_tuning
    modules = dict(model.named_modules())
    targets = {t: modules[t] for t in method.target_names()}
    assert any(t.startswith('bbox_head.') for t in targets)  # head=True
    original = {t: (m.weight.detach().clone(), m.bias.detach().clone())
                for t, m in targets.items()}
    torch.manual_seed(1)
    inputs = {t: torch.randn(3, m.in_features) for t, m in targets.items()}
    with torch.no_grad():
        tuned = {t: m(inputs[t]) for t, m in targets.items()}
        for t, m in targets.items():  # the LoRA update is there
            assert not torch.allclose(tuned[t], F.linear(inputs[t],
                                                         *original[t]))
        method.merge()
        assert method.merged
        for t, m in targets.items():
            assert not torch.equal(m.weight, original[t][0])
            torch.testing.assert_close(m(inputs[t]), tuned[t])
            # merged: the plain layer with the merged weight, nothing added
            torch.testing.assert_close(
                F.linear(inputs[t], m.weight, m.bias), tuned[t])
        method.unmerge()
        for t, m in targets.items():
            torch.testing.assert_close(m.weight, original[t][0])
            torch.testing.assert_close(m(inputs[t]), tuned[t])
        method.merge()
        method.detach()
        assert not method.merged
        for t, m in targets.items():
            assert 'forward' not in vars(m)
            torch.testing.assert_close(m.weight, original[t][0])
            assert torch.equal(m.bias, original[t][1])


def test_lora_follows_parameters_replaced_by_a_conversion(demo_root):
    """A conversion that replaces parameter objects (not only their data)
    leaves LoRA computing with the target's new weight."""
    model, _ = build_method('gdino', demo_root, METHODS['lora'])
    method = model.prompt_tuning
    name = method.target_names()[0]
    target = dict(model.named_modules())[name]
    x = torch.randn(3, target.in_features, dtype=torch.float64)
    with torch.no_grad():
        expected = target(x.float()).double()
    old_weight = target.weight
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        model.double()
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(False)
    assert target.weight is not old_weight
    with torch.no_grad():
        got = target(x)
        assert not torch.allclose(got, F.linear(x, target.weight,
                                                target.bias))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
