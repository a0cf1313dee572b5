"""SDPT (projects/sdpt/methods/sdpt.py) numerics and behaviour on tiny GLIP
and Grounding DINO, and with mmdet's chunked prompts for long class lists."""
import pytest
import torch
import torch.nn as nn
from helpers import (
    DETECTORS,
    build_base,
    build_model,
    demo_config,
    fusion_call,
    long_class_list,
    make_batch,
    raw_train_batch,
)
from helpers import predict as _predict
from mmdet.registry import MODELS
from mmengine.optim import OptimWrapper

from projects.sdpt import InverseProjection


# ---- the inverse projection -------------------------------------------------
def test_inverse_projection_is_the_least_squares_inverse():
    torch.manual_seed(0)
    proj = nn.Linear(16, 64).double()
    nn.init.normal_(proj.bias)
    tokens = torch.randn(5, 64, dtype=torch.double)
    image_side = InverseProjection(proj)(tokens.double()).double()
    assert image_side.shape == (5, 16)
    W, b = proj.weight.detach(), proj.bias.detach()
    range_projector = W @ torch.linalg.pinv(W)  # onto range(W) in R^64
    expected = (tokens - b) @ range_projector.T + b
    torch.testing.assert_close(
        proj(image_side).detach(), expected, rtol=1e-4, atol=1e-4)
    # least squares: the residual is orthogonal to range(W)
    residual = tokens - proj(image_side).detach()
    assert (residual @ W).abs().max() < 1e-3


def test_inverse_projection_follows_weights_loaded_after_build():
    proj = nn.Linear(8, 32)
    inverse = InverseProjection(proj)
    tokens = torch.randn(3, 32)
    before = inverse(tokens)
    assert inverse(tokens) is not before and torch.equal(
        inverse(tokens), before)
    proj.load_state_dict({'weight': torch.randn(32, 8), 'bias': proj.bias})
    after = inverse(tokens)
    torch.testing.assert_close(
        after, (tokens - proj.bias.detach()) @ torch.linalg.pinv(
            proj.weight.detach().t()))
    assert not torch.allclose(before, after)


# ---- whole detectors -------------------------------------------------------
def _assert_same_predictions(a, b, exact=True):
    for (boxes_a, scores_a, labels_a), (boxes_b, scores_b,
                                        labels_b) in zip(a, b):
        if exact:
            assert torch.equal(boxes_a, boxes_b)
            assert torch.equal(scores_a, scores_b)
        else:
            torch.testing.assert_close(boxes_a, boxes_b, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(
                scores_a, scores_b, atol=1e-5, rtol=1e-4)
        assert torch.equal(labels_a, labels_b)


@pytest.mark.slow
@pytest.mark.parametrize('name', DETECTORS)
def test_zero_tokens_or_prompts_off_give_the_base_outputs_exactly(
        name, demo_root):
    base = build_base(name, demo_root)
    # Frozen like the prompted model: PyTorch picks other (equally valid)
    # kernels for parameters that require grad, which changes the last bits
    # of Grounding DINO's scores even under no_grad.
    base.requires_grad_(False)
    cfg = demo_config(name, demo_root)
    batch = make_batch(base, demo_root, cfg=cfg)
    expected = _predict(base, batch)

    no_tokens, _ = build_model(name, demo_root, num_tokens=0)
    no_tokens.load_state_dict(base.state_dict(), strict=False)
    _assert_same_predictions(_predict(no_tokens, batch), expected)

    prompted, _ = build_model(name, demo_root, num_tokens=8)
    prompted.load_state_dict(base.state_dict(), strict=False)
    prompted.prompt_tuning.enabled = False
    _assert_same_predictions(_predict(prompted, batch), expected)
    prompted.prompt_tuning.enabled = True
    with pytest.raises(AssertionError):
        _assert_same_predictions(_predict(prompted, batch), expected)


@pytest.mark.parametrize('name', DETECTORS)
def test_batch_of_two_gives_each_image_its_predictions_alone(name, demo_root):
    model, cfg = build_model(name, demo_root, num_tokens=8)
    together = _predict(model, make_batch(model, demo_root, (1, 2), cfg=cfg))
    alone = _predict(model, make_batch(model, demo_root, (1, ), cfg=cfg)) + \
        _predict(model, make_batch(model, demo_root, (2, ), cfg=cfg))
    _assert_same_predictions(together, alone, exact=False)


def _fusion_call(model, name):
    """The first prompted fusion attention of ``model`` and its inputs."""
    layer = model.prompt_tuning.prompted_layers[0]
    return (layer.attention, ) + fusion_call(layer, name)


def _outputs_with_and_without_prompts(model, name):
    model.eval()
    attention, args, kwargs = _fusion_call(model, name)
    with torch.no_grad():
        prompted = attention(*args, **kwargs)
        model.prompt_tuning.enabled = False
        base = attention(*args, **kwargs)
        model.prompt_tuning.enabled = True
    assert prompted[0].shape == base[0].shape
    assert prompted[1].shape == base[1].shape
    return prompted, base


@pytest.mark.parametrize('name', DETECTORS)
def test_reference_mode_leaves_image_output_unchanged(name, demo_root):
    model, _ = build_model(name, demo_root, num_tokens=8, mode='reference')
    (out_v, out_l), (base_v, base_l) = _outputs_with_and_without_prompts(
        model, name)
    torch.testing.assert_close(out_v, base_v, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out_l, base_l)


@pytest.mark.parametrize('name', DETECTORS)
def test_synchronous_mode_prompts_both_modalities(name, demo_root):
    model, _ = build_model(name, demo_root, num_tokens=8, mode='synchronous')
    (out_v, out_l), (base_v, base_l) = _outputs_with_and_without_prompts(
        model, name)
    assert not torch.allclose(out_v, base_v)
    assert not torch.allclose(out_l, base_l)


@pytest.mark.slow
@pytest.mark.parametrize('name', DETECTORS)
def test_training_changes_only_the_prompts_under_activation_checkpointing(
        name, demo_root):
    model, cfg = build_model(name, demo_root, num_tokens=8)
    det = cfg.model.detector
    # the demo configs keep the real configs' activation checkpointing on
    if name == 'glip':
        assert det.bbox_head.use_checkpoint
    else:
        assert det.encoder.num_cp > 0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(
        n.startswith('prompt_tuning.') for n, p in model.named_parameters()
        if p.requires_grad)
    frozen_outputs = []
    model.backbone.register_forward_hook(
        lambda m, i, o: frozen_outputs.extend(o))
    wrapper = OptimWrapper(torch.optim.AdamW(trainable, lr=1e-2))
    model.train()
    batch = raw_train_batch(demo_root, cfg)
    for _ in range(2):
        losses = model.train_step(batch, wrapper)
    assert all(torch.isfinite(v) for v in losses.values())
    # frozen modules before the first prompt ran without autograd
    assert frozen_outputs and not any(o.requires_grad for o in frozen_outputs)
    changed = {
        k for k, v in model.state_dict().items() if not torch.equal(
            v, before[k])
    }
    prompt_keys = {k for k in before if k.startswith('prompt_tuning.')}
    assert changed == prompt_keys, changed ^ prompt_keys


def test_glip_without_fusion_is_refused(demo_root):
    cfg = demo_config('glip', demo_root)
    cfg.model.detector.bbox_head.early_fuse = False
    with pytest.raises(ValueError, match='early_fuse'):
        MODELS.build(cfg.model)


def test_layer_selection_and_sharing(demo_root):
    model, _ = build_model(
        'gdino', demo_root, num_tokens=4, share_across_layers=True)
    assert [l.index for l in model.prompt_tuning.prompted_layers] == [0, 1]
    assert sum(p.numel() for p in model.parameters()
               if p.requires_grad) == 4 * 1024
    model, _ = build_model('gdino', demo_root, num_tokens=4, layers=[1])
    assert list(model.prompt_tuning.prototypes) == ['layer1']
    with pytest.raises(ValueError, match='fusion layer 5'):
        build_model('gdino', demo_root, num_tokens=4, layers=[5])


# ---- chunked prompts: class lists longer than the encoder reads ------------
@pytest.mark.slow
@pytest.mark.parametrize('fast_attention', [True, False])
@pytest.mark.parametrize('name', ['glip', 'gdino'])
def test_chunked_prompts_for_a_long_class_list(name, fast_attention,
                                               demo_root):
    """mmdet's chunked prediction with the prompt-tuned tiny detectors:
    every chunk fits the encoder, is prompted, and contributes labels."""
    model, cfg = build_model(name, demo_root, fast_attention=fast_attention)
    model.eval()
    classes = long_class_list()
    caption, _ = model.to_plain_text_prompts(classes)
    n_tokens = len(model.language_model.tokenizer(caption)['input_ids'])
    assert n_tokens > 256  # one caption would not fit
    model.test_cfg['chunked_size'] = 40

    captions = []
    real_forward = model.language_model.forward

    def spy(captions_in, *args, **kwargs):
        captions.append(list(captions_in))
        return real_forward(captions_in, *args, **kwargs)

    model.language_model.forward = spy
    # Text tokens entering / leaving each prompted fusion attention (hook
    # registered after SDPT's, so it sees the extended inputs).
    fused = []

    def record(module, args, kwargs, output):
        lang = args[1] if len(args) > 1 else kwargs['lang']
        fused.append((lang.shape[1], output[1].shape[1]))

    attns = [m for m in model.modules()
             if type(m).__name__ == 'BiMultiHeadAttention']
    for m in attns:
        m.register_forward_hook(record, with_kwargs=True)

    def predict():
        data = make_batch(model, demo_root, image_ids=(1, ), cfg=cfg)
        for sample in data['data_samples']:
            sample.set_metainfo(dict(text=classes, custom_entities=True))
        with torch.no_grad():
            return model.predict(data['inputs'], data['data_samples'])[0]

    out = predict()
    assert len(captions) == 3  # 120 classes, 40 a chunk
    for chunk in captions:
        assert len(model.language_model.tokenizer(chunk[0])['input_ids']) \
            <= model.language_model.max_tokens
    labels = out.pred_instances.labels
    assert labels.max() < len(classes)
    for c in range(3):  # each chunk's classes come back, offset right
        assert ((labels >= 40 * c) & (labels < 40 * (c + 1))).any()
    assert out.pred_instances.label_names == [classes[i] for i in labels]
    # every chunk goes through every prompted fusion layer and leaves with
    # its own text length; on the hook path the K=16 prompt tokens are
    # appended to the text going in (the fast path keeps them as keys only)
    assert len(fused) == 3 * len(attns)
    extra = 0 if fast_attention else 16
    assert all(n_in == n_out + extra for n_in, n_out in fused)
