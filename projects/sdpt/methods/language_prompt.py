"""GLIP's language prompt tuning (``language_prompt_v2``).

A learnable offset per text position, initialised at zero, is added to the
text encoder's output features before they reach the fusion: position ``t``
of every caption gets ``offset[t]``. The offset is added where the detectors
take their text features from mmdet's ``BertModel`` output dict (a forward
hook on the language model instance):

* GLIP reads ``'hidden'`` (the fusion layers and, with early fusion, the
  head's alignment score) and ``'embedded'`` (the head without early
  fusion); the offset goes into both, as GLIP does.
* Grounding DINO reads ``'embedded'``, maps it with ``text_feat_map`` and
  feeds it to the encoder's fusion and text layers; the offset goes into the
  same two entries (``'hidden'`` is unused there), so the encoder sees
  ``text_feat_map(embedded + offset)``.

Only real tokens get the offset (the caption's token mask); padding stays
what the base model gives it, so a caption's features do not depend on the
longest caption in its batch. Positions beyond ``num_positions`` get none.
GLIP's recipe: lr 0.05, weight decay 0.25.

Example::

    prompt = dict(type='LanguagePromptOffset', num_positions=256)

Parameters: ``offset`` (num_positions, text width), zeros at the start, so
the untrained method is the base detector.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .base import PromptMethod


def real_token_mask(text_features: dict) -> Optional[Tensor]:
    """(B, L) mask of real tokens of an mmdet ``BertModel`` output: the
    tokenizer's mask (``'text_token_mask'``) under Grounding DINO's
    sub-sentence masking, where ``'masks'`` is a (B, L, L) attention mask;
    ``'masks'`` itself otherwise."""
    if text_features.get('text_token_mask') is not None:
        return text_features['text_token_mask']
    masks = text_features.get('masks')
    return masks if masks is not None and masks.dim() == 2 else None


@MODELS.register_module()
class LanguagePromptOffset(PromptMethod):
    """A zero-initialised learnable offset per text position.

    Args:
        num_positions (int, optional): positions with an offset (GLIP: the
            language model's token limit); defaults to the language model's
            ``max_tokens`` (256 in mmdet's configs).
    """

    def __init__(self, num_positions: Optional[int] = None):
        super().__init__()
        if num_positions is not None and num_positions < 1:
            raise ValueError(
                f'num_positions must be >= 1, got {num_positions}')
        self.num_positions = num_positions

    def attach(self, detector, adapter):
        self.adapter = adapter
        language_model = detector.language_model
        if self.num_positions is None:
            self.num_positions = int(language_model.max_tokens)
        self.offset = nn.Parameter(
            torch.zeros(self.num_positions, adapter.text_width(detector)))
        self._keep(language_model.register_forward_hook(self._add_offset))
        return self

    def _add_offset(self, module, args, output):
        if not self.enabled:
            return None
        embedded = output['embedded']
        length = embedded.shape[1]
        offset = self.offset[:length].to(embedded.dtype)
        if length > self.num_positions:
            offset = torch.cat(
                [offset, offset.new_zeros(length - self.num_positions,
                                          offset.shape[1])])
        offset = offset.unsqueeze(0)
        mask = real_token_mask(output)
        if mask is not None:
            offset = offset * mask.unsqueeze(-1).to(offset.dtype)
        # Returned, this replaces the language model's output dict.
        return dict(output, embedded=embedded + offset,
                    hidden=output['hidden'] + offset)

    def signature(self):
        return dict(super().signature(), num_positions=self.num_positions)
