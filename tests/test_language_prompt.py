"""The language prompt (projects/sdpt/methods/language_prompt.py): a learned
offset at every real text token, padding untouched."""
import pytest
import torch
from helpers import DETECTORS, METHODS, build_method

from projects.sdpt.methods.language_prompt import real_token_mask


@pytest.mark.parametrize('name', DETECTORS)
def test_language_offset_reaches_real_tokens_only(name, demo_root):
    """offset[t] is added at every real token t of every caption (up to
    num_positions), to the features GLIP and Grounding DINO read; padding
    keeps the base model's values."""
    model, _ = build_method(name, demo_root, METHODS['language_prompt'])
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
