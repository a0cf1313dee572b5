"""The shared machinery of methods that add tokens to fusion attentions.

mmdet's ``BiMultiHeadAttention`` (GLIP's ``VLFuse``, Grounding DINO's encoder
fusion layers) lets image queries attend to text keys and text queries to
image keys in one shared *aligning space*. A fusion-prompt method appends
``K`` tokens to each side of the attention's inputs, ``V' = [V; Pv]`` and
``L' = [L; Pl]``, and drops the prompt rows of both outputs, so every shape
leaving the layer is the base model's. Subclasses say only which tokens they
append (:meth:`FusionPromptMethod.prompt_tokens`): SDPT maps one set of
unified tokens through frozen inverse projections (``methods/sdpt.py``),
independent dual prompts hold one free tensor per side
(``methods/independent_dual.py``).

Two equal paths compute the prompted attention (the math of both is in
``methods/prompted_attention.py``):

* ``prompted_bi_attention`` (``fast_attention=True``, default) computes only
  the original tokens' rows (prompts enter as keys and values only) with the
  prompts' projections cached while no gradient is recorded;
* forward hooks on the mmdet instance that extend its inputs and masks and
  drop the prompt rows (``fast_attention=False``), the numerical reference.

Masks: ``mode='synchronous'`` (the SDPT paper) lets image queries see the
text-side prompts; ``mode='reference'`` (the public reference code) masks them
for image queries, so a prompted layer's image output is the base model's.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from ..detectors.adapters import (
    DetectorAdapter,
    FusionLayer,
    select_fusion_layers,
)
from .base import PromptMethod, ReplacedMethod
from .prompted_attention import (
    drop_prompt_rows,
    extend_attention_inputs,
    prompt_projections,
    prompted_bi_attention,
    split_attention_call,
)

MODES = ('synchronous', 'reference')


class FusionPromptMethod(PromptMethod):
    """Base of methods that add tokens to the inputs of fusion attentions.

    A subclass says which tokens each prompted layer appends on the image side
    and on the text side (:meth:`prompt_tokens`). By default
    (``fast_attention=True``) the prompted attention instances compute their
    output with :func:`prompted_bi_attention`: only the original tokens'
    rows, the prompts' projections cached while no gradient is recorded.
    With ``fast_attention=False`` (the straightforward path, kept as the
    numerical reference) forward hooks extend the inputs and masks of the
    mmdet attention and drop the prompt rows of its outputs. Either way the
    detector's code and parameter names stay untouched. ``enabled = False``
    switches every prompt off (the mmdet forward runs unchanged).
    """

    def __init__(self,
                 num_tokens: int,
                 layers: Union[str, Sequence[int]] = 'all',
                 mode: str = 'synchronous',
                 fast_attention: bool = True):
        super().__init__()
        self.fast_attention = fast_attention
        # keep the prompts' projections while no gradient is recorded (off
        # only to measure what the cache saves)
        self.cache_prompts = True
        self._cache = {}
        if num_tokens < 0:
            raise ValueError(f'num_tokens must be >= 0, got {num_tokens}')
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        self.num_tokens = num_tokens
        self.layers = layers
        self.mode = mode
        self.adapter: Optional[DetectorAdapter] = None
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
        return select_fusion_layers(all_layers, self.layers)

    def attach(self, detector: nn.Module, adapter: DetectorAdapter):
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
            self._keep(
                ReplacedMethod(layer.attention, 'forward',
                               self._make_fast_forward(layer)))
        return self

    # ---- fast path -------------------------------------------------------
    def _fast(self, attention) -> bool:
        # a global max over every logit (prompt rows included) is not
        # reproduced by the row-restricted path: use the hooks then
        return self.fast_attention and not attention.stable_softmax_2d

    def _cached(self, layer: FusionLayer, name: str, modules, compute):
        """``compute()``, cached while no gradient is recorded; the key
        follows every parameter of the method and of ``modules`` (identity
        and in-place version), the dtype and autocast state."""
        if torch.is_grad_enabled() or not self.cache_prompts:
            return compute()
        tensors = list(self.parameters())
        for module in modules:
            tensors += list(module.parameters())
        device = tensors[0].device
        key = (tuple((t.data_ptr(), t._version) for t in tensors),
               torch.is_autocast_enabled(device.type),
               torch.get_autocast_dtype(device.type))
        slot = (self._cache_scope, layer.index, name)
        entry = self._cache.get(slot)
        if entry is None or entry[0] != key:
            entry = (key, compute())
            self._cache[slot] = entry
        return entry[1]

    def forget_cache(self, scope=None) -> None:
        """Drop the cached prompt projections of ``scope`` (a bank's task
        that was removed)."""
        for slot in [s for s in self._cache if s[0] == scope]:
            del self._cache[slot]

    # ---- mixed-task batches (models/prompt_bank.py) -----------------------
    def mixed_task_support(self):
        return None  # prompts enter as keys / values per image

    def _per_image(self, compute, batch: int):
        """``compute()`` (a tensor or a tuple of tensors / None) for each
        image of the batch: once per task of :attr:`task_batch` with that
        task's parameters (cached per task), then gathered per image, so each
        result gains a leading batch dimension. Without a task batch the
        method's own parameters serve every image (no batch dimension)."""
        tasks = self.task_batch
        if tasks is None:
            return compute()
        tasks.check_batch_size(batch)
        values = []
        for name in tasks.order:
            with self.parameters_of(name, tasks.parameters[name]):
                values.append(compute())
        if isinstance(values[0], tuple):
            return tuple(
                None if parts[0] is None else torch.stack(parts)[tasks.index]
                for parts in zip(*values))
        return torch.stack(values)[tasks.index]

    def _prompt_tokens_cached(self, layer: FusionLayer):
        return self._cached(layer, 'tokens', [layer.attention],
                            lambda: self.prompt_tokens(layer))

    def _prompt_projections(self, layer: FusionLayer, dtype,
                            text_side: bool):
        """Per-head query and value of the image-side copies and, when
        ``text_side``, key and value of the text-side copies (else None:
        in reference mode no query sees them)."""
        attn = layer.attention

        def compute():
            image_tokens, text_tokens = self._prompt_tokens_cached(layer)
            return prompt_projections(
                attn, image_tokens.to(dtype),
                text_tokens.to(dtype) if text_side else None)

        return self._cached(layer, f'projections_{dtype}_{text_side}',
                            [attn], compute)

    def _make_fast_forward(self, layer: FusionLayer):
        attention = layer.attention
        original = type(attention).forward

        def forward(*args, **kwargs):
            if not (self.enabled and self._fast(attention)):
                return original(attention, *args, **kwargs)
            vision, lang, mask_v, mask_l = split_attention_call(args, kwargs)
            batch, num_text = lang.shape[:2]
            visible = self.mode == 'synchronous'
            # the text mask the hook path gives the image queries
            mask_l = self.adapter.extend_text_mask(
                mask_l, batch, num_text, self.num_tokens, lang.device,
                visible=visible)
            if mask_l is not None and not visible:
                mask_l = mask_l[:, :num_text]
            projections = self._per_image(
                lambda: self._prompt_projections(layer, vision.dtype,
                                                 visible), batch)
            return prompted_bi_attention(
                attention, vision, lang, mask_v, mask_l, projections,
                prompts_visible_to_image=visible)

        return forward

    def _make_input_hook(self, layer: FusionLayer):

        def extend_inputs(module, args, kwargs):
            if not self.enabled or self._fast(module):
                return None
            vision, lang, mask_v, mask_l = split_attention_call(args, kwargs)
            image_tokens, text_tokens = self._per_image(
                lambda: self._prompt_tokens_cached(layer), lang.shape[0])
            vision, lang, mask_v, mask_l = extend_attention_inputs(
                vision, lang, mask_v, mask_l, image_tokens, text_tokens,
                self.adapter,
                prompts_visible_to_image=self.mode == 'synchronous')
            return (vision, lang), dict(
                attention_mask_v=mask_v, attention_mask_l=mask_l)

        return extend_inputs

    def _drop_prompt_rows(self, module, args, output):
        if not self.enabled or self._fast(module):
            return None
        return drop_prompt_rows(*output, self.num_tokens)

    def signature(self) -> Dict:
        """What a checkpoint of this method must match to load."""
        return dict(
            super().signature(),
            num_tokens=self.num_tokens,
            layers=[layer.index for layer in self.prompted_layers],
            mode=self.mode)
