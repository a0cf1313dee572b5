"""Every method of the zoo on tiny GLIP and Grounding DINO: only its own
parameters train, switched off it is the base detector exactly, batches of
two keep each image's shapes and masks."""
import re

import pytest
import torch

from conftest import build_base, demo_config, make_batch
from conftest import predict as _predict

DETECTORS = ['glip', 'gdino']
CLASSES = ('circle', 'square', 'triangle')
METHODS = {
    'sdpt': dict(type='SDPTPrompt', num_tokens=4),
    'sdpt_reference': dict(type='SDPTPrompt', num_tokens=4, mode='reference'),
    'independent_dual': dict(type='IndependentDualPrompt', num_tokens=4),
    'text': dict(type='TextContextPrompt', num_context=4),
    'text_per_class': dict(
        type='TextContextPrompt', num_context=2, class_specific=True,
        classes=CLASSES),
    'visual': dict(type='VisualDeepPrompt', num_tokens=3),
    'dpt': dict(type='DPTPrompt', text=dict(num_context=4),
                visual=dict(num_tokens=3)),
    # 3 classes > 2 candidates: candidates come from the zero-shot detector
    'dpt_zero_shot_candidates': dict(
        type='DPTPrompt', text=dict(num_context=2), visual=dict(num_tokens=2),
        num_candidates=2),
    'language_prompt': dict(type='LanguagePromptOffset', num_positions=16),
    'linear_probe': dict(type='LinearProbing'),
    'bitfit': dict(type='BitFit'),
    'lora': dict(type='LoRA', rank=4),
    'lora_head': dict(type='LoRA', rank=2, layers=[0],
                      projections=['v_proj', 'out_l_proj'], head=True),
    'fusion_adapter': dict(type='FusionBottleneckAdapter', bottleneck=8),
    'maple': dict(type='MaPLePrompt', num_context=2, stages=2),
}
# Methods whose parameters start at zero, so that the untrained method is the
# base detector (test_zero_initialised_methods_start_as_the_base_detector).
ZERO_INITIALISED = ('language_prompt', 'lora', 'fusion_adapter')


def perturb_zero_initialised(method, std=0.1):
    """Test-only: give the method's all-zero parameters (the language
    offset, LoRA's B, the adapters' up-projections) small random values.

    At zero these methods compute exactly the base detector, so "switched on
    changes it", the batch equivalence and gradients reaching every
    parameter (LoRA's A gets none while B is zero) would hold only after
    training. Parameters drawn at random are left as they are.
    """
    with torch.no_grad():
        for param in method.parameters():
            if not param.any():
                param.normal_(std=std)


def build(name, demo_root, prompt, seed=0, perturb=True, **model):
    """The tiny detector with ``prompt``; its zero-initialised parameters
    perturbed (:func:`perturb_zero_initialised`) unless ``perturb=False``."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = demo_config(name, demo_root)
    cfg.model.prompt = prompt
    cfg.model.update(model)
    torch.manual_seed(seed)
    built = MODELS.build(cfg.model)
    if perturb:
        perturb_zero_initialised(built.prompt_tuning)
    return built, cfg


def _raw_train_batch(demo_root, cfg, image_ids=(0, 1)):
    from mmdet.datasets import CocoDataset
    from mmengine.dataset import pseudo_collate
    shapes = demo_root / 'data' / 'demo' / 'shapes'
    dataset = CocoDataset(
        data_root=str(shapes),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=CLASSES),
        pipeline=[t for t in cfg.train_pipeline if t['type'] != 'RandomFlip'],
        return_classes=True)
    return pseudo_collate([dataset[i] for i in image_ids])


def _same(a, b):
    return all(
        torch.equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


@pytest.fixture(scope='module', params=DETECTORS)
def base(request, demo_root):
    name = request.param
    model = build_base(name, demo_root)
    # frozen like the prompted models (see test_sdpt: kernels differ in the
    # last bits when parameters require grad)
    model.requires_grad_(False)
    cfg = demo_config(name, demo_root)
    batch = make_batch(model, demo_root, cfg=cfg)
    return name, model, batch, _predict(model, batch)


@pytest.mark.parametrize('method', list(METHODS))
def test_method_off_is_the_base_model_and_on_changes_it(method, base,
                                                        demo_root):
    from projects.sdpt.methods import DetectorSubsetMethod
    name, base_model, batch, expected = base
    model, _ = build(name, demo_root, METHODS[method])
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


@pytest.mark.parametrize('method', list(METHODS))
@pytest.mark.parametrize('name', DETECTORS)
def test_training_changes_only_the_method_parameters(name, method,
                                                     demo_root):
    from projects.sdpt.models.prompt_tuned_detector import \
        allowed_trainable_names
    model, cfg = build(name, demo_root, METHODS[method])
    model.init_weights()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    named = dict(model.named_parameters())
    trainable = [n for n, p in named.items() if p.requires_grad]
    # the method's own parameters, and the detector's that it names
    assert trainable and set(trainable) == set(allowed_trainable_names(model))
    optimizer = torch.optim.SGD([named[n] for n in trainable], lr=10.0)
    model.train()
    batch = _raw_train_batch(demo_root, cfg)
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


@pytest.mark.parametrize('method', [
    'text_per_class', 'visual', 'dpt', 'language_prompt', 'lora_head',
    'fusion_adapter', 'maple'
])
@pytest.mark.parametrize('name', DETECTORS)
def test_batch_of_two_gives_each_image_its_predictions_alone(
        name, method, demo_root):
    model, cfg = build(name, demo_root, METHODS[method])
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
    'lora': 'rank', 'fusion_adapter': 'bottleneck', 'maple': 'num_context'
}


@pytest.mark.parametrize('method', [
    'text', 'visual', 'dpt', 'independent_dual', 'language_prompt',
    'linear_probe', 'bitfit', 'lora', 'fusion_adapter', 'maple'
])
def test_checkpoint_holds_only_the_method_and_refuses_other_methods(
        method, demo_root):
    from types import SimpleNamespace

    from projects.sdpt import PromptCheckpointMismatch, PromptTuningHook
    from projects.sdpt.engine.hooks.prompt_tuning_hook import check_prompt_checkpoint
    model, _ = build('gdino', demo_root, METHODS[method])
    runner = SimpleNamespace(model=model, cfg=dict(load_from='base.pth'))
    checkpoint = dict(state_dict=model.state_dict(), meta={})
    PromptTuningHook().before_save_checkpoint(runner, checkpoint)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(checkpoint['state_dict']) == trainable
    meta = checkpoint['meta']['prompt_tuning']
    assert meta['method'] == type(model.prompt_tuning).__name__
    check_prompt_checkpoint(meta, model, 'ckpt.pth')  # its own: loads
    other, _ = build('gdino', demo_root, METHODS['sdpt'])
    with pytest.raises(PromptCheckpointMismatch, match='method: '):
        check_prompt_checkpoint(meta, other, 'ckpt.pth')
    bigger = dict(METHODS[method])
    key = SIZE_OPTION.get(method)
    if key:
        bigger[key] += 1
        resized, _ = build('gdino', demo_root, bigger)
        with pytest.raises(PromptCheckpointMismatch, match=key):
            check_prompt_checkpoint(meta, resized, 'ckpt.pth')


@pytest.mark.parametrize('class_specific', [False, True])
def test_text_context_sits_before_each_class_name(class_specific, demo_root):
    prompt = dict(type='TextContextPrompt', num_context=3,
                  class_specific=class_specific, classes=CLASSES)
    model, _ = build('glip', demo_root, prompt)
    method = model.prompt_tuning
    tokenized, caption, tokens_positive, _ = model.get_tokens_and_prompts(
        list(CLASSES), True)
    assert caption == '[MASK] [MASK] [MASK] circle. [MASK] [MASK] [MASK] ' \
        'square. [MASK] [MASK] [MASK] triangle'
    # class spans still cover the names only
    assert [caption[s:e] for [[s, e]] in tokens_positive] == list(CLASSES)
    embeddings = method.adapter.text_input_embeddings(model)
    seen = []
    handle = embeddings.register_forward_hook(
        lambda m, i, o: seen.append((i[0], o)))
    model.language_model([caption, caption])
    handle.remove()
    ids, out = seen[0]
    assert out.shape[0] == 2
    base = embeddings.weight[ids]
    context_rows = (ids == method.placeholder_id).nonzero().tolist()
    assert len(context_rows) == 2 * 3 * len(CLASSES)
    for row, pos in context_rows:
        before = sum(1 for p in range(pos) if ids[row, p] ==
                     method.placeholder_id)
        run, index = divmod(before, 3)
        expected = method.context[run if class_specific else 0, index]
        torch.testing.assert_close(out[row, pos], expected, rtol=0, atol=0)
    others = ids != method.placeholder_id
    assert torch.equal(out[others], base[others])
    method.enabled = False
    assert model.get_tokens_and_prompts(list(CLASSES), True)[1] == \
        'circle. square. triangle'


def test_window_attention_with_prompts_against_the_formula():
    from mmdet.models.backbones.swin import WindowMSA

    from projects.sdpt.methods.visual_prompt import window_attention_with_prompts
    torch.manual_seed(0)
    msa = WindowMSA(embed_dims=8, num_heads=2, window_size=(2, 2)).eval()
    torch.nn.init.normal_(msa.relative_position_bias_table)
    images, windows, n, c = 2, 3, 4, 8
    x = torch.randn(images * windows, n, c)
    mask = torch.zeros(windows, n, n)
    mask[1, :2, 2:] = mask[1, 2:, :2] = -100.0  # a shifted window
    # no prompts: mmdet's own attention
    torch.testing.assert_close(
        window_attention_with_prompts(msa, x, mask, []), msa(x, mask))
    shared = torch.randn(3, c)
    per_image = torch.randn(images, 2, c)
    got = window_attention_with_prompts(msa, x, mask, [shared, per_image])
    # the formula, one window and one head at a time
    w_q, w_k, w_v = msa.qkv.weight.split(c)
    b_q, b_k, b_v = msa.qkv.bias.split(c)
    bias = msa.relative_position_bias_table[
        msa.relative_position_index.view(-1)].view(n, n, -1)
    d = c // 2
    for w in range(images * windows):
        tokens = torch.cat([x[w], shared, per_image[w // windows]])
        q = x[w] @ w_q.T + b_q
        k = tokens @ w_k.T + b_k
        v = tokens @ w_v.T + b_v
        heads = []
        for h in range(2):
            s = slice(h * d, (h + 1) * d)
            logits = q[:, s] @ k[:, s].T * d**-0.5
            logits[:, :n] += bias[:, :, h] + mask[w % windows]
            heads.append(logits.softmax(-1) @ v[:, s])
        expected = msa.proj(torch.cat(heads, dim=1))
        torch.testing.assert_close(got[w], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('method', ZERO_INITIALISED)
def test_zero_initialised_methods_start_as_the_base_detector(method, base,
                                                             demo_root):
    """Untrained (unperturbed), the language offset, LoRA and the fusion
    adapters add exact zeros: the detector is the base one, bit for bit."""
    name, base_model, batch, expected = base
    model, _ = build(name, demo_root, METHODS[method], perturb=False)
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
    model, _ = build(name, demo_root, METHODS['linear_probe'])
    names = [n for n, _ in model.named_parameters()]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if expected is None:
        expected = {
            n for n in names
            if re.match(r'bbox_head\.(cls|reg)_branches\.\d+\.', n)
        }
        assert any(n.endswith('log_scale') for n in expected)
    assert trainable == expected
    model, _ = build(name, demo_root, METHODS['bitfit'])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n in names if n.split('.')[-1] == 'bias'}
    # from the text encoder to the head
    assert any(n.startswith('language_model.') for n in trainable)
    assert any(n.startswith('backbone.') for n in trainable)
    assert any(n.startswith('bbox_head.') for n in trainable)


@pytest.mark.parametrize('name', DETECTORS)
def test_lora_keeps_mmdet_names_merges_and_detaches(name, demo_root):
    """LoRA leaves the detector's parameter names as they are; peft's merge
    folds the updates into the targets' weights (same outputs), unmerge and
    detach give the original weights and forwards back."""
    import torch.nn.functional as F
    model, _ = build(name, demo_root, METHODS['lora_head'])
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
    import torch.nn.functional as F
    model, _ = build('gdino', demo_root, METHODS['lora'])
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


@pytest.mark.parametrize('name', DETECTORS)
def test_language_offset_reaches_real_tokens_only(name, demo_root):
    """offset[t] is added at every real token t of every caption (up to
    num_positions), to the features GLIP and Grounding DINO read; padding
    keeps the base model's values."""
    from projects.sdpt.methods.language_prompt import real_token_mask
    model, _ = build(name, demo_root, METHODS['language_prompt'])
    method = model.prompt_tuning
    captions = ['circle. square', 'circle. square. triangle. circle']
    with torch.no_grad():
        tuned = model.language_model(captions)
        method.enabled = False
        plain = model.language_model(captions)
    method.enabled = True
    real = real_token_mask(plain).bool()
    assert real[0].sum() < real[1].sum()  # the short caption has padding
    batch, length, width = plain['embedded'].shape
    offset = torch.zeros(length, width)
    covered = min(length, method.num_positions)
    offset[:covered] = method.offset[:covered].detach()
    for key in ('embedded', 'hidden'):
        added = tuned[key] - plain[key]
        torch.testing.assert_close(added[real],
                                   offset.expand(batch, -1, -1)[real])
        assert not added[~real].any()


def test_maple_visual_tokens_are_coupled_to_the_text_context(demo_root):
    model, _ = build('gdino', demo_root, METHODS['maple'])
    method = model.prompt_tuning
    context = method.text.context
    assert set(method.coupling) == {'stage0_block0', 'stage1_block0'}
    for key, coupling in method.coupling.items():
        tokens = method.visual._extra[key]()
        width = method.visual.blocks[key].attn.w_msa.qkv.in_features
        assert tokens.shape == (2, width)
        torch.testing.assert_close(tokens, coupling(context[0]))
        # the only visual parameters are the couplings: the tokens follow
        # the text context
        with torch.no_grad():
            context.add_(1.0)
        assert not torch.allclose(method.visual._extra[key](), tokens)
    assert not list(method.visual.parameters())


def test_every_registered_method_has_a_row_in_this_matrix():
    """A new method is tested here once it has a row in METHODS."""
    import projects.sdpt  # noqa: F401
    from projects.sdpt.methods import registered_methods
    assert set(registered_methods()) <= {m['type'] for m in METHODS.values()}
