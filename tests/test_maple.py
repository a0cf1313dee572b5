"""MaPLe (projects/sdpt/methods/maple.py): the visual tokens are coupled to
the text context."""
import torch
from helpers import METHODS, build_method


def test_maple_visual_tokens_are_coupled_to_the_text_context(demo_root):
    model, _ = build_method('gdino', demo_root, METHODS['maple'])
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
