"""SDPT: Synchronous Dual Prompt Tuning (Zhou et al., ECCV 2024).

One set of learnable *unified prototype tokens* ``P`` (K, embed_dim) lives in
the aligning space of a fusion attention, where image queries ``v_proj(V)`` and
text keys ``l_proj(L)`` meet. Frozen inverse projections of those two
pre-trained projections map ``P`` into each modality's input space::

    Pv = (P - b_v) @ pinv(W_v^T)        # (K, v_dim), image-side copy
    Pl = (P - b_l) @ pinv(W_l^T)        # (K, l_dim), text-side copy

``pinv`` is the Moore-Penrose inverse: embed_dim > v_dim, l_dim, so
``v_proj(Pv)`` is the least-squares closest point to ``P`` that ``v_proj`` can
reach. The copies join the (layer-normalised) inputs of the attention,
``V' = [V; Pv]`` and ``L' = [L; Pl]``; attention runs on the extended sets and
the prompt rows of both outputs are dropped, so everything leaving the layer
has the base model's shapes. Only ``P`` trains.

Example::

    prompt = dict(type='SDPTPrompt', num_tokens=100, layers='all',
                  mode='synchronous')
"""
from typing import Sequence, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .fusion_prompt import FusionPromptMethod


class InverseProjection:
    """Frozen least-squares inverse of an ``nn.Linear`` (d -> E, E > d).

    ``__call__(P)`` returns ``(P - b) @ pinv(W^T)`` in float32. ``pinv`` is
    computed once per value of the weight and cached: the weight is frozen, and
    the cache key follows in-place updates (``load_state_dict`` bumps the
    tensor version), so loading pre-trained weights after building is safe.
    """

    def __init__(self, linear: nn.Linear):
        self.linear = linear
        self._key = None
        self._pinv_t = None

    def pinv_t(self) -> Tensor:
        weight = self.linear.weight
        key = (weight.data_ptr(), weight._version, weight.device)
        if key != self._key:
            # float32 even under AMP: pinv of a half matrix is unreliable.
            with torch.no_grad(), torch.autocast(
                    device_type=weight.device.type, enabled=False):
                self._pinv_t = torch.linalg.pinv(weight.float().t())
            self._key = key
        return self._pinv_t

    def __call__(self, tokens: Tensor) -> Tensor:
        bias = self.linear.bias
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            centred = tokens.float()
            if bias is not None:
                centred = centred - bias.detach().float()
            return centred @ self.pinv_t()


class UnifiedPrototypePrompt(nn.Module):
    """K learnable tokens in a fusion layer's aligning space.

    ``tokens`` (K, embed_dim); ``init``: ``'uniform'`` U(-1, 1) (the
    reference code's) or ``'normal'`` N(0, 0.02).
    """

    def __init__(self, num_tokens: int, embed_dim: int, init='uniform'):
        super().__init__()
        self.tokens = nn.Parameter(torch.empty(num_tokens, embed_dim))
        self.init = init
        self.reset_parameters()

    def reset_parameters(self):
        if self.init == 'uniform':
            nn.init.uniform_(self.tokens, -1.0, 1.0)
        elif self.init == 'normal':
            nn.init.normal_(self.tokens, std=0.02)
        else:
            raise ValueError(f"prompt init must be 'uniform' or 'normal', "
                             f'got {self.init!r}')

    def extra_repr(self):
        k, dim = self.tokens.shape
        return f'num_tokens={k}, embed_dim={dim}, init={self.init}'


@MODELS.register_module()
class SDPTPrompt(FusionPromptMethod):
    """SDPT: unified prototype tokens mapped by frozen inverse projections.

    Args:
        num_tokens (int): K tokens per prompted layer (0 = base model).
        layers (str | list[int]): ``'all'`` fusion layers or their indices.
        share_across_layers (bool): one set of tokens for every prompted layer
            (they must share embed_dim) instead of one set per layer.
        mode (str): ``'synchronous'`` (the paper: image queries see ``Pl``,
            text queries ``Pv``) or ``'reference'`` (the public reference
            code: ``Pl`` is masked for image queries).
        init (str): ``'uniform'`` U(-1, 1) (reference code) or ``'normal'``.
        fast_attention (bool): compute only the original tokens' rows
            (default); False runs the hook path (same numbers, slower).
    """

    def __init__(self,
                 num_tokens: int = 100,
                 layers: Union[str, Sequence[int]] = 'all',
                 share_across_layers: bool = False,
                 mode: str = 'synchronous',
                 init: str = 'uniform',
                 fast_attention: bool = True):
        super().__init__(num_tokens=num_tokens, layers=layers, mode=mode,
                         fast_attention=fast_attention)
        self.share_across_layers = share_across_layers
        self.init = init
        self.prototypes = nn.ModuleDict()  # P, one per layer (or shared)
        self._inverse = {}  # layer index -> (to image space, to text space)

    def _key(self, layer) -> str:
        return 'shared' if self.share_across_layers else f'layer{layer.index}'

    def build_prompts(self, layers):
        if self.share_across_layers and len(
                {layer.embed_dim for layer in layers}) > 1:
            raise ValueError('prompt.share_across_layers=True needs one '
                             'aligning-space width across the prompted '
                             'layers')
        for layer in layers:
            if self._key(layer) not in self.prototypes:
                self.prototypes[self._key(layer)] = UnifiedPrototypePrompt(
                    self.num_tokens, layer.embed_dim, init=self.init)
            self._inverse[layer.index] = (
                InverseProjection(layer.attention.v_proj),
                InverseProjection(layer.attention.l_proj))

    def prompt_tokens(self, layer):
        """Pv = (P - b_v) @ pinv(W_v^T), Pl = (P - b_l) @ pinv(W_l^T)."""
        tokens = self.prototypes[self._key(layer)].tokens
        to_image, to_text = self._inverse[layer.index]
        return to_image(tokens), to_text(tokens)

    def signature(self):
        return dict(super().signature(),
                    share_across_layers=self.share_across_layers)
