"""The text context prompt (projects/sdpt/methods/text_prompt.py): learned
context tokens sit before each class name, the class spans cover the names
only."""
import pytest
import torch
from helpers import SHAPES, build_method


@pytest.mark.parametrize('class_specific', [False, True])
def test_text_context_sits_before_each_class_name(class_specific, demo_root):
    prompt = dict(type='TextContextPrompt', num_context=3,
                  class_specific=class_specific, classes=SHAPES)
    model, _ = build_method('glip', demo_root, prompt)
    method = model.prompt_tuning
    tokenized, caption, tokens_positive, _ = model.get_tokens_and_prompts(
        list(SHAPES), True)
    assert caption == '[MASK] [MASK] [MASK] circle. [MASK] [MASK] [MASK] ' \
        'square. [MASK] [MASK] [MASK] triangle'
    # class spans still cover the names only
    assert [caption[s:e] for [[s, e]] in tokens_positive] == list(SHAPES)
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
    assert len(context_rows) == 2 * 3 * len(SHAPES)
    for row, pos in context_rows:
        before = sum(1 for p in range(pos) if ids[row, p] ==
                     method.placeholder_id)
        run, index = divmod(before, 3)
        expected = method.context[run if class_specific else 0, index]
        torch.testing.assert_close(out[row, pos], expected, rtol=0, atol=0)
    others = ids != method.placeholder_id
    assert torch.equal(out[others], base[others])
    method.enabled = False
    assert model.get_tokens_and_prompts(list(SHAPES), True)[1] == \
        'circle. square. triangle'
