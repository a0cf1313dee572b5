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
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from mmdet.registry import MODELS

from .fusion import FusionAdapter, FusionLayer
from .method import PromptMethod

MODES = ('synchronous', 'reference')


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

    Args:
        num_tokens (int): K.
        embed_dim (int): width of the aligning space.
        init (str): ``'uniform'`` (U(-1, 1), the reference code's) or
            ``'normal'`` (N(0, 0.02)).

    Shape: ``tokens`` is (K, embed_dim).
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
        return f'num_tokens={self.tokens.shape[0]}, embed_dim=' \
               f'{self.tokens.shape[1]}, init={self.init}'


def _split_attention_call(args, kwargs):
    """(vision, lang, mask_v, mask_l) of a BiMultiHeadAttention call."""
    names = ('vision', 'lang', 'attention_mask_v', 'attention_mask_l')
    values = dict(zip(names, args))
    values.update(kwargs)
    return [values.get(n) for n in names]


class FusionPromptMethod(PromptMethod):
    """Base of methods that add tokens to the inputs of fusion attentions.

    A subclass says which tokens each prompted layer appends on the image side
    and on the text side (:meth:`prompt_tokens`); this class extends the inputs
    and masks through forward hooks on the mmdet attention instances and drops
    the prompt rows of the outputs, so the detector's code and parameter names
    stay untouched. ``enabled = False`` switches every prompt off.
    """

    def __init__(self,
                 num_tokens: int,
                 layers: Union[str, Sequence[int]] = 'all',
                 mode: str = 'synchronous'):
        super().__init__()
        if num_tokens < 0:
            raise ValueError(f'num_tokens must be >= 0, got {num_tokens}')
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        self.num_tokens = num_tokens
        self.layers = layers
        self.mode = mode
        self.adapter: Optional[FusionAdapter] = None
        self.prompted_layers: List[FusionLayer] = []

    # ---- to implement ----------------------------------------------------
    def build_prompts(self, layers: List[FusionLayer]) -> None:
        """Create the trainable tensors for the selected layers."""
        raise NotImplementedError

    def prompt_tokens(self, layer: FusionLayer) -> Tuple[Tensor, Tensor]:
        """(image-side tokens (K, v_dim), text-side tokens (K, l_dim))."""
        raise NotImplementedError

    # ---- shared ------------------------------------------------------------
    def select_layers(self, all_layers: List[FusionLayer]):
        if self.layers == 'all':
            return list(all_layers)
        if isinstance(self.layers, str):
            raise ValueError(
                f"prompt.layers must be 'all' or a list of fusion layer "
                f'indices, got {self.layers!r}')
        chosen = []
        for i in self.layers:
            if not -len(all_layers) <= i < len(all_layers):
                raise ValueError(
                    f'prompt.layers names fusion layer {i}, but the detector '
                    f'has {len(all_layers)} (indices 0..'
                    f'{len(all_layers) - 1}).')
            chosen.append(all_layers[i])
        return chosen

    def attach(self, detector: nn.Module, adapter: FusionAdapter):
        """Hook the prompts into ``detector``'s fusion attentions."""
        self.adapter = adapter
        self.prompted_layers = self.select_layers(
            adapter.fusion_layers(detector))
        self.build_prompts(self.prompted_layers)
        if self.num_tokens == 0:
            return self
        for layer in self.prompted_layers:
            adapter.make_checkpointing_gradient_safe(layer)
            self._keep(
                layer.attention.register_forward_pre_hook(
                    self._make_input_hook(layer), with_kwargs=True))
            self._keep(
                layer.attention.register_forward_hook(self._drop_prompt_rows))
        return self

    def _make_input_hook(self, layer: FusionLayer):

        def extend_inputs(module, args, kwargs):
            if not self.enabled:
                return None
            vision, lang, mask_v, mask_l = _split_attention_call(args, kwargs)
            batch, num_text = lang.shape[:2]
            image_tokens, text_tokens = self.prompt_tokens(layer)
            k = image_tokens.shape[0]
            # One set of tokens for every image: broadcast over the batch.
            vision = torch.cat(
                [vision, image_tokens.to(vision.dtype).expand(batch, -1, -1)],
                dim=1)
            lang = torch.cat(
                [lang, text_tokens.to(lang.dtype).expand(batch, -1, -1)],
                dim=1)
            mask_v = self.adapter.extend_visual_mask(mask_v, k)
            mask_l = self.adapter.extend_text_mask(
                mask_l, batch, num_text, k, lang.device,
                visible=self.mode == 'synchronous')
            return (vision, lang), dict(
                attention_mask_v=mask_v, attention_mask_l=mask_l)

        return extend_inputs

    def _drop_prompt_rows(self, module, args, output):
        if not self.enabled:
            return None
        out_v, out_l = output
        return out_v[:, :-self.num_tokens], out_l[:, :-self.num_tokens]

    def signature(self) -> Dict:
        """What a checkpoint of this method must match to load."""
        return dict(
            super().signature(),
            num_tokens=self.num_tokens,
            layers=[layer.index for layer in self.prompted_layers],
            mode=self.mode)


@MODELS.register_module()
class SDPTPrompt(FusionPromptMethod):
    """SDPT: unified prototype tokens mapped by frozen inverse projections.

    Args:
        num_tokens (int): K tokens per prompted layer (0 = base model).
        layers (str | list[int]): ``'all'`` fusion layers or their indices.
        share_across_layers (bool): one set of tokens for every prompted layer
            (they must share embed_dim) instead of one set per layer.
        mode (str): ``'synchronous'`` (the paper: image queries see the
            text-side copy and text queries the image-side copy) or
            ``'reference'`` (the public reference code: the text-side copy is
            masked for image queries, so the image output of a prompted layer
            is unchanged).
        init (str): token initialisation, ``'uniform'`` U(-1, 1) (reference
            code) or ``'normal'``.
    """

    def __init__(self,
                 num_tokens: int = 100,
                 layers: Union[str, Sequence[int]] = 'all',
                 share_across_layers: bool = False,
                 mode: str = 'synchronous',
                 init: str = 'uniform'):
        super().__init__(num_tokens=num_tokens, layers=layers, mode=mode)
        self.share_across_layers = share_across_layers
        self.init = init
        self.prototypes = nn.ModuleDict()
        self._inverse = {}

    def _key(self, layer: FusionLayer) -> str:
        return 'shared' if self.share_across_layers else f'layer{layer.index}'

    def build_prompts(self, layers):
        embed_dims = {layer.embed_dim for layer in layers}
        if self.share_across_layers and len(embed_dims) > 1:
            raise ValueError(
                'prompt.share_across_layers=True needs one aligning-space '
                f'width across the prompted layers, got {sorted(embed_dims)}')
        for layer in layers:
            key = self._key(layer)
            if key not in self.prototypes:
                self.prototypes[key] = UnifiedPrototypePrompt(
                    self.num_tokens, layer.embed_dim, init=self.init)
            self._inverse[layer.index] = (
                InverseProjection(layer.attention.v_proj),
                InverseProjection(layer.attention.l_proj))

    def prompt_tokens(self, layer):
        tokens = self.prototypes[self._key(layer)].tokens
        to_image, to_text = self._inverse[layer.index]
        return to_image(tokens), to_text(tokens)

    def signature(self):
        return dict(
            super().signature(),
            share_across_layers=self.share_across_layers)
