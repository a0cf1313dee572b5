"""MaPLe-style coupled prompts (multi-modal prompt learning), adapted to
GLIP and Grounding DINO.

MaPLe learns prompts on the language side only and *derives* the visual
prompts from them through a learned linear coupling, so the two modalities'
prompts are tied. Here:

* text: M shared CoOp context vectors before every class name, in BERT's
  input embedding space (:class:`TextContextPrompt`, the same mechanism and
  position as the text prompt of the zoo);
* vision: every Swin block of the first J stages gets M prompt tokens
  ``coupling_b(context)``: a linear map from the text width to the block's
  width, one per block (MaPLe: one coupling function per prompted layer),
  applied to the same context vectors. The tokens join the block's window
  attention as extra keys/values of every window (:class:`VisualDeepPrompt`'s
  mechanism), so the visual prompts are a function of the text context and
  gradients from both modalities reach the context.

Example::

    prompt = dict(type='MaPLePrompt', num_context=2, stages=2)

Parameters: ``text.context`` (1, M, text width) and ``coupling[block]``
(block width x text width + block width) for every block of the first J
stages.
"""
import torch.nn as nn
from mmdet.registry import MODELS

from .base import PromptMethod
from .text_prompt import TextContextPrompt
from .visual_prompt import VisualDeepPrompt


@MODELS.register_module()
class MaPLePrompt(PromptMethod):
    """Text context vectors and visual prompts coupled to them.

    Args:
        num_context (int): M context vectors, and M visual tokens per
            prompted block (MaPLe: 2).
        stages (int): J, the number of leading Swin stages whose blocks get
            coupled visual prompts.
        init_std (float): the context vectors start as N(0, init_std).
    """

    def __init__(self,
                 num_context: int = 2,
                 stages: int = 2,
                 init_std: float = 0.02):
        super().__init__()
        if stages < 1:
            raise ValueError(f'stages must be >= 1, got {stages}')
        self.num_context = num_context
        self.stages = stages
        self.text = TextContextPrompt(
            num_context=num_context, init_std=init_std)
        # no free visual tokens: every prompted block's tokens come from the
        # coupling (added as the blocks' extra tokens)
        self.visual = VisualDeepPrompt(
            num_tokens=0, stages=list(range(stages)))
        self.coupling = nn.ModuleDict()

    def attach(self, detector, adapter):
        self.adapter = adapter
        self.text.attach(detector, adapter)
        self.visual.attach(detector, adapter)
        text_width = self.text.context.shape[-1]
        for key, block in self.visual.blocks.items():
            self.coupling[key] = nn.Linear(text_width,
                                           block.attn.w_msa.qkv.in_features)
            self.visual.set_extra_tokens(key, self._coupled_tokens(key))
        self.visual.hook_blocks()
        return self

    def _coupled_tokens(self, key):
        # (M, block width), shared by every window of every image
        return lambda: self.coupling[key](self.text.context[0])

    def signature(self):
        return dict(
            super().signature(),
            num_context=self.num_context,
            blocks=sorted(self.coupling.keys()))
