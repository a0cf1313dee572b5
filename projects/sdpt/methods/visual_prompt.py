"""Visual prompt tuning, deep variant (VPT-deep), in a Swin backbone.

Every Swin block gets its own N learnable tokens. They take part in that
block's window attention as extra keys and values of *every* window (the
tokens of a window attend to the window and to the prompts), and they are
not queries, so nothing is produced for them: they are gone after the block
and patch merging never sees them. Relative position bias and the shifted
window mask apply to the window's own tokens only; prompts are visible to
every token of every window.

Example::

    prompt = dict(type='VisualDeepPrompt', num_tokens=10)

Other modules can add per-image tokens to chosen blocks through
:meth:`VisualDeepPrompt.set_extra_tokens` (DPT's class-aware prompts).
"""
import functools
from typing import Callable, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from ..detectors.adapters import use_non_reentrant_checkpoint
from .base import PromptMethod, ReplacedMethod


def window_attention_with_prompts(msa: nn.Module, x: Tensor,
                                  mask: Optional[Tensor],
                                  prompts: Sequence[Tensor]) -> Tensor:
    """mmdet ``WindowMSA`` with ``prompts`` as extra keys/values.

    Args:
        msa: the ``WindowMSA`` instance (its weights are used as they are).
        x: (num_windows * B, N, C) window tokens, image-major.
        mask: (num_windows, N, N) shifted-window mask or None.
        prompts: tensors of (P, C) tokens shared by every window, or of
            (B, P, C) tokens of each image, shared by that image's windows.
    """
    windows, n, channels = x.shape
    heads = msa.num_heads
    head_dim = channels // heads
    qkv = msa.qkv(x).reshape(windows, n, 3, heads,
                             head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    keys, values = [k], [v]
    for tokens in prompts:
        # Only keys and values of the prompts are needed, computed once per
        # token and then shared by the windows.
        kv = F.linear(tokens.to(x.dtype), msa.qkv.weight[channels:],
                      None if msa.qkv.bias is None else
                      msa.qkv.bias[channels:])
        if kv.dim() == 2:
            kv = kv.unsqueeze(0).expand(windows, -1, -1)
        else:
            kv = kv.repeat_interleave(windows // kv.shape[0], dim=0)
        kv = kv.reshape(windows, -1, 2, heads,
                        head_dim).permute(2, 0, 3, 1, 4)
        keys.append(kv[0])
        values.append(kv[1])
    k = torch.cat(keys, dim=2)
    v = torch.cat(values, dim=2)
    num_prompts = k.shape[2] - n

    attn = (q * msa.scale) @ k.transpose(-2, -1)  # (windows, h, N, N + P)
    bias = msa.relative_position_bias_table[
        msa.relative_position_index.view(-1)].view(n, n, -1).permute(2, 0, 1)
    attn = attn + F.pad(bias, (0, num_prompts)).unsqueeze(0)
    if mask is not None:
        num_windows = mask.shape[0]
        attn = attn.view(windows // num_windows, num_windows, heads, n,
                         n + num_prompts) + F.pad(
                             mask, (0, num_prompts)).unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, heads, n, n + num_prompts)
    attn = msa.attn_drop(msa.softmax(attn))
    out = (attn @ v).transpose(1, 2).reshape(windows, n, channels)
    return msa.proj_drop(msa.proj(out))


@MODELS.register_module()
class VisualDeepPrompt(PromptMethod):
    """N learnable tokens per Swin block (VPT-deep).

    Args:
        num_tokens (int): N per block (VPT: 10; 0 = base model).
        stages (str | list[int]): ``'all'`` Swin stages or their indices.
        init_std (float): tokens start as N(0, init_std) (VPT: 0.02).

    Parameters: ``tokens['stage{i}_block{j}']`` of shape (N, C_i).
    """

    def __init__(self,
                 num_tokens: int = 10,
                 stages: Union[str, Sequence[int]] = 'all',
                 init_std: float = 0.02):
        super().__init__()
        if num_tokens < 0:
            raise ValueError(f'num_tokens must be >= 0, got {num_tokens}')
        self.num_tokens = num_tokens
        self.stages = stages
        self.init_std = init_std
        self.tokens = nn.ParameterDict()
        self.blocks: Dict[str, nn.Module] = {}
        self._extra: Dict[str, Callable[[], Optional[Tensor]]] = {}

    def attach(self, detector, adapter):
        self.adapter = adapter
        backbone = adapter.image_backbone(detector)
        stages = range(len(backbone.stages)) if self.stages == 'all' else \
            self.stages
        for i in stages:
            if not -len(backbone.stages) <= i < len(backbone.stages):
                raise ValueError(
                    f'prompt stages names Swin stage {i}, the backbone has '
                    f'{len(backbone.stages)}.')
            for j, block in enumerate(backbone.stages[i].blocks):
                self.blocks[f'stage{i % len(backbone.stages)}_block{j}'] = \
                    block
        for key, block in self.blocks.items():
            if self.num_tokens:
                width = block.attn.w_msa.qkv.in_features
                self.tokens[key] = nn.Parameter(
                    torch.randn(self.num_tokens, width) * self.init_std)
        self.hook_blocks()
        return self

    def hook_blocks(self):
        """Route the blocks' window attention through the prompts."""
        for key, block in self.blocks.items():
            if key not in self.tokens and key not in self._extra:
                continue
            msa = block.attn.w_msa
            if 'forward' in vars(msa):
                continue
            self._keep(
                ReplacedMethod(
                    msa, 'forward',
                    functools.partial(self._attention, key,
                                      type(msa).forward.__get__(msa))))
            if block.with_cp:
                # SwinBlock's own checkpoint is reentrant: parameters inside
                # get no gradient when the block input needs none.
                block.with_cp = False
                use_non_reentrant_checkpoint(block)

    def set_extra_tokens(self, key: str,
                         provider: Callable[[], Optional[Tensor]]) -> None:
        """Per-image tokens (B, Q, C) for block ``key``, from ``provider``
        at every forward (None = none this time)."""
        self._extra[key] = provider

    def _attention(self, key, original, x, mask=None):
        if not self.enabled:
            return original(x, mask)
        prompts = [self.tokens[key]] if key in self.tokens else []
        extra = self._extra[key]() if key in self._extra else None
        if extra is not None:
            prompts.append(extra)
        if not prompts:
            return original(x, mask)
        return window_attention_with_prompts(self.blocks[key].attn.w_msa, x,
                                             mask, prompts)

    def signature(self):
        return dict(
            super().signature(),
            num_tokens=self.num_tokens,
            blocks=sorted(self.tokens.keys()))
