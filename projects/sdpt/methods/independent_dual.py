"""Independent dual prompts in the fusion space (the SDPT ablation).

Same place and same attention as SDPT, but one learnable tensor per modality
directly in each fusion input space: ``Pv`` (K, v_dim) joins the image tokens
and ``Pl`` (K, l_dim) the text tokens, with no shared prototype and no
inverse projection. Comparing it with :class:`SDPTPrompt` at the same K and
layers isolates what the unified tokens and their inverse projections buy.

Example::

    prompt = dict(type='IndependentDualPrompt', num_tokens=100, layers='all')
"""
from typing import Sequence, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS

from .fusion_prompt import FusionPromptMethod


@MODELS.register_module()
class IndependentDualPrompt(FusionPromptMethod):
    """K image-side and K text-side tokens per prompted fusion layer.

    Args:
        num_tokens (int): K per modality and layer (0 = base model).
        layers (str | list[int]): ``'all'`` fusion layers or their indices.
        mode (str): ``'synchronous'`` (both sides visible to the other
            modality) or ``'reference'`` (text-side tokens hidden from image
            queries, as SDPT's reference code does).
        init_std (float): tokens start as N(0, init_std).
    """

    def __init__(self,
                 num_tokens: int = 100,
                 layers: Union[str, Sequence[int]] = 'all',
                 mode: str = 'synchronous',
                 init_std: float = 0.02,
                 fast_attention: bool = True):
        super().__init__(
            num_tokens=num_tokens, layers=layers, mode=mode,
            fast_attention=fast_attention)
        self.init_std = init_std
        self.image_tokens = nn.ParameterDict()
        self.text_tokens = nn.ParameterDict()

    def build_prompts(self, layers):
        for layer in layers:
            key = f'layer{layer.index}'
            self.image_tokens[key] = nn.Parameter(
                torch.randn(self.num_tokens, layer.v_dim) * self.init_std)
            self.text_tokens[key] = nn.Parameter(
                torch.randn(self.num_tokens, layer.l_dim) * self.init_std)

    def prompt_tokens(self, layer):
        key = f'layer{layer.index}'
        return self.image_tokens[key], self.text_tokens[key]
