"""The prompted fusion attention (projects/sdpt/methods/prompted_attention.py):
the fast path (only the original rows computed, prompt projections cached
without grad, masked keys skipped in reference mode) against the
straightforward hook path, on tiny GLIP and Grounding DINO."""
import pytest
import torch
from helpers import DETECTORS, build_model, fusion_call, make_batch
from helpers import predict as _predict

MODES = ['synchronous', 'reference']


def _attend(method, layer, args, kwargs, fast, training):
    method.fast_attention = fast
    method.train(training)
    layer.attention.train(training)
    tokens = [p for p in method.parameters()]
    for p in tokens:
        p.grad = None
    with torch.set_grad_enabled(training):
        out_v, out_l = layer.attention(*args, **kwargs)
        grads = None
        if training:
            gen = torch.Generator().manual_seed(2)
            loss = (out_v * torch.randn(out_v.shape, generator=gen)).sum() + \
                (out_l * torch.randn(out_l.shape, generator=gen)).sum()
            loss.backward()
            grads = [None if p.grad is None else p.grad.clone()
                     for p in tokens]
    return out_v.detach(), out_l.detach(), grads


def _assert_same_grads(fast, slow):
    assert [g is None for g in fast] == [g is None for g in slow]
    assert any(g is not None and g.abs().sum() > 0 for g in slow)
    for a, b in zip(fast, slow):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize('training', [False, True], ids=['eval', 'train'])
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name', DETECTORS)
def test_fast_attention_equals_the_hook_path(name, mode, training,
                                             demo_root):
    model, _ = build_model(name, demo_root, num_tokens=8, mode=mode)
    method = model.prompt_tuning
    for layer in method.prompted_layers:
        # dropout draws different masks on different shapes: compare the
        # deterministic computation
        layer.attention.dropout = 0.0
        args, kwargs = fusion_call(layer, name)
        slow = _attend(method, layer, args, kwargs, False, training)
        fast = _attend(method, layer, args, kwargs, True, training)
        for a, b in zip(fast[:2], slow[:2]):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        if training:
            _assert_same_grads(fast[2], slow[2])


@pytest.mark.slow
@pytest.mark.parametrize('name', DETECTORS)
def test_fast_attention_off_is_the_mmdet_forward_bit_for_bit(name,
                                                             demo_root):
    model, _ = build_model(name, demo_root, num_tokens=8)
    model.eval()
    method = model.prompt_tuning
    layer = method.prompted_layers[0]
    args, kwargs = fusion_call(layer, name)
    with torch.no_grad():
        method.enabled = False
        off = layer.attention(*args, **kwargs)
        method.enabled = True
        base = type(layer.attention).forward(layer.attention, *args,
                                             **kwargs)
    for a, b in zip(off, base):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name', DETECTORS)
def test_whole_detector_fast_equals_hook_path(name, mode, demo_root):
    model, cfg = build_model(name, demo_root, num_tokens=8, mode=mode)
    method = model.prompt_tuning
    batch = make_batch(model, demo_root, (1, 2), cfg=cfg)
    method.fast_attention = False
    slow = _predict(model, batch)
    method.fast_attention = True
    fast = _predict(model, batch)
    for (bf, sf, lf), (bs, ss, ls) in zip(fast, slow):
        torch.testing.assert_close(bf, bs, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(sf, ss, atol=1e-5, rtol=1e-4)
        assert torch.equal(lf, ls)

    # training: same losses and prompt gradients (dropout off)
    for layer in method.prompted_layers:
        layer.attention.dropout = 0.0
    train_batch = make_batch(model, demo_root, (1, 2), train=True, cfg=cfg)
    model.train()
    results = []
    for fast_path in (False, True):
        method.fast_attention = fast_path
        model.zero_grad()
        torch.manual_seed(0)  # other dropouts, denoising queries
        losses = model(**train_batch, mode='loss')
        total, _ = model.parse_losses(losses)
        total.backward()
        results.append((total.detach(), [
            None if p.grad is None else p.grad.clone()
            for p in method.parameters()
        ]))
    (loss_slow, grads_slow), (loss_fast, grads_fast) = results
    torch.testing.assert_close(loss_fast, loss_slow, rtol=1e-5, atol=1e-6)
    _assert_same_grads(grads_fast, grads_slow)


@pytest.mark.slow
@pytest.mark.parametrize('name', DETECTORS)
def test_cache_follows_tokens_and_weights(name, demo_root):
    model, _ = build_model(name, demo_root, num_tokens=8)
    model.eval()
    method = model.prompt_tuning
    layer = method.prompted_layers[0]
    args, kwargs = fusion_call(layer, name)

    def fast_and_slow():
        with torch.no_grad():
            method.fast_attention = True
            fast = layer.attention(*args, **kwargs)
            method.fast_attention = False
            slow = layer.attention(*args, **kwargs)
            method.fast_attention = True
        for a, b in zip(fast, slow):  # a stale cache is off by far more
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        return fast

    first = fast_and_slow()
    with torch.no_grad():
        cached = method._prompt_projections(layer, torch.float32, True)
        assert method._prompt_projections(layer, torch.float32,
                                          True) is cached
    # an optimizer-like in-place update of the tokens
    with torch.no_grad():
        for p in method.parameters():
            p.mul_(0.5).add_(0.1)
    second = fast_and_slow()
    assert not torch.allclose(first[1], second[1])
    # weights loaded after the first forward
    attention = layer.attention
    state = {k: torch.randn_like(v) * 0.05 for k, v in
             attention.l_proj.state_dict().items()}
    attention.l_proj.load_state_dict(state)
    third = fast_and_slow()
    assert not torch.allclose(second[1], third[1])
    with torch.no_grad():
        assert method._prompt_projections(layer, torch.float32,
                                          True) is not cached


@pytest.mark.parametrize('name', DETECTORS)
def test_reference_mode_never_projects_the_masked_keys(name, demo_root):
    model, _ = build_model(name, demo_root, num_tokens=8, mode='reference')
    method = model.prompt_tuning
    layer = method.prompted_layers[0]
    args, kwargs = fusion_call(layer, name)
    seen = []
    layer.attention.l_proj.register_forward_hook(
        lambda m, i, o: seen.append(tuple(i[0].shape)))
    layer.attention.values_l_proj.register_forward_hook(
        lambda m, i, o: seen.append(tuple(i[0].shape)))
    for training in (True, False):
        model.train(training)
        with torch.set_grad_enabled(training):
            layer.attention(*args, **kwargs)
    # only the real text tokens (B, Nl, l_dim) went through the text-side
    # projections, never the K prompt copies
    assert seen and all(s == tuple(args[1].shape) for s in seen)
