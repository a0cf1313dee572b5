"""Every method of the zoo on tiny GLIP and Grounding DINO: only its own
parameters train, switched off it is the base detector exactly, batches of
two keep each image's shapes and masks."""
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
}


def build(name, demo_root, prompt, seed=0, **model):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = demo_config(name, demo_root)
    cfg.model.prompt = prompt
    cfg.model.update(model)
    torch.manual_seed(seed)
    return MODELS.build(cfg.model), cfg


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
    name, base_model, batch, expected = base
    model, _ = build(name, demo_root, METHODS[method])
    missing, unexpected = model.load_state_dict(
        base_model.state_dict(), strict=False)
    assert not unexpected
    assert all(k.startswith('prompt_tuning.') for k in missing)
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
    model, cfg = build(name, demo_root, METHODS[method])
    model.init_weights()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    named = dict(model.named_parameters())
    trainable = [n for n, p in named.items() if p.requires_grad]
    assert trainable and all(n.startswith('prompt_tuning.') for n in trainable)
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


@pytest.mark.parametrize('method', ['text_per_class', 'visual', 'dpt'])
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
        torch.testing.assert_close(boxes_a, boxes_b, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(scores_a, scores_b, atol=1e-5, rtol=1e-4)
        assert torch.equal(labels_a, labels_b)


@pytest.mark.parametrize('method', ['text', 'visual', 'dpt',
                                    'independent_dual'])
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
    key = {'text': 'num_context', 'visual': 'num_tokens',
           'independent_dual': 'num_tokens'}.get(method)
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


def test_every_registered_method_has_a_row_in_this_matrix():
    """A new method is tested here once it has a row in METHODS."""
    import projects.sdpt  # noqa: F401
    from projects.sdpt.methods import registered_methods
    assert set(registered_methods()) <= {m['type'] for m in METHODS.values()}
