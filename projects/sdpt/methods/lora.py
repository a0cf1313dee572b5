"""LoRA on the image-text fusion attention (and optionally the head).

Each target ``nn.Linear`` (``W``, ``b``) gets a trainable low-rank update,
computed by Hugging Face peft's LoRA layer (``peft.tuners.lora.layer.Linear``,
peft 0.13.2)::

    y = x W^T + b + (alpha / rank) * dropout(x) A^T B^T
    A: (rank, in_features), Kaiming-uniform;  B: (out_features, rank), zeros

so the untrained method is the base detector. Targets: the projections of
mmdet's ``BiMultiHeadAttention`` in the chosen fusion layers (``v_proj``,
``l_proj``, ``values_v_proj``, ``values_l_proj``, ``out_v_proj``,
``out_l_proj`` by default; GLIP's ``VLFuse`` attentions, Grounding DINO's
``encoder.fusion_layers[*].attn``) and, with ``head=True``, the linear layers
among the head's final prediction layers (GLIP's
``dot_product_projection_text``; Grounding DINO's box-regression MLPs).

How it sits in the detector: the detector's modules and parameter names stay
mmdet's (released weights load with ``load_from``; checkpoints hold only the
LoRA matrices). For every target the method builds a peft ``Linear`` around a
plain ``nn.Linear`` that *shares* the target's weight and bias tensors, and
replaces the ``forward`` of that one target instance with the peft layer's
(the class is never patched). The peft layer's ``lora_A`` / ``lora_B`` /
``lora_dropout`` are registered under this method
(``prompt_tuning.adapters.<target>.lora_A.default.weight``, ...).

* ``enabled = False``: peft's ``enable_adapters(False)``; its forward is then
  the plain linear layer (bit for bit the base detector).
* ``merge()``: peft's ``merge(safe_merge=True)`` folds ``(alpha / rank) B A``
  into each target's weight (the detector's own tensor), so inference costs
  nothing extra; ``unmerge()`` subtracts it again (up to rounding).
* ``detach()``: unmerges, then gives every target its original ``forward``.

Example::

    prompt = dict(type='LoRA', rank=16, alpha=16, layers='all', head=False)
"""
import functools
import re
from typing import Dict, List, Sequence, Union

import torch.nn as nn
from mmdet.registry import MODELS
from peft.tuners.lora.layer import Linear as PeftLoRALinear

from ..detectors.adapters import select_fusion_layers
from .base import PromptMethod, ReplacedMethod

FUSION_PROJECTIONS = ('v_proj', 'l_proj', 'values_v_proj', 'values_l_proj',
                      'out_v_proj', 'out_l_proj')
ADAPTER_NAME = 'default'


def linear_sharing_parameters(linear: nn.Linear) -> nn.Linear:
    """A plain ``nn.Linear`` holding ``linear``'s own weight and bias
    tensors (no copy).

    Why: peft's layer computes the base output by calling its
    ``base_layer``. Passing the target itself would call the target's
    replaced ``forward`` again (endless recursion); this twin runs
    ``nn.Linear.forward`` on the same tensors, and peft's ``merge`` writes
    into them, i.e. into the detector's weight.
    """
    twin = nn.Linear(linear.in_features, linear.out_features,
                     bias=linear.bias is not None, device='meta')
    twin.weight = linear.weight
    twin.bias = linear.bias
    return twin


class LoRAWeights(nn.Module):
    """The trainable parts of one peft LoRA layer, registered under the
    method (the peft layer itself is not a submodule: its ``base_layer``
    would register the detector's weight a second time)."""

    def __init__(self, peft_layer: nn.Module):
        super().__init__()
        self.lora_A = peft_layer.lora_A
        self.lora_B = peft_layer.lora_B
        self.lora_dropout = peft_layer.lora_dropout


@MODELS.register_module()
class LoRA(PromptMethod):
    """peft LoRA on the fusion attention's projections (and the head).

    Args:
        rank (int): rank of every update (16).
        alpha (float): scaling numerator; the update is scaled by
            ``alpha / rank`` (default 16: scale 1).
        dropout (float): dropout on the LoRA branch's input.
        layers (str | list[int]): ``'all'`` fusion layers or their indices.
        projections (list[str]): which ``BiMultiHeadAttention`` projections
            of those layers get LoRA (default all six).
        head (bool): also the linear layers among the head's final
            prediction layers.
    """

    def __init__(self,
                 rank: int = 16,
                 alpha: float = 16,
                 dropout: float = 0.0,
                 layers: Union[str, Sequence[int]] = 'all',
                 projections: Sequence[str] = FUSION_PROJECTIONS,
                 head: bool = False):
        super().__init__()
        if rank < 1:
            raise ValueError(f'rank must be >= 1, got {rank}')
        unknown = set(projections) - set(FUSION_PROJECTIONS)
        if unknown or not projections:
            raise ValueError(
                f'projections must be a non-empty subset of '
                f'{FUSION_PROJECTIONS}, got {list(projections)}')
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.layers = layers
        self.projections = tuple(projections)
        self.head = head
        self.adapters = nn.ModuleDict()
        # target module name -> peft LoRA layer (not submodules, see
        # LoRAWeights), and -> the target nn.Linear of the detector
        self._peft_layers: Dict[str, nn.Module] = {}
        self._targets: Dict[str, nn.Linear] = {}

    def target_linears(self, detector, adapter) -> Dict[str, nn.Linear]:
        """``{detector module name: nn.Linear}`` that get LoRA."""
        targets = {}
        for layer in select_fusion_layers(
                adapter.fusion_layers(detector), self.layers):
            # the updates run inside the detector's checkpointed block
            adapter.make_checkpointing_gradient_safe(layer)
            for name in self.projections:
                targets[f'{layer.name}.{name}'] = getattr(
                    layer.attention, name)
        if self.head:
            patterns = [re.compile(p)
                        for p in adapter.prediction_layer_patterns()]
            for name, module in detector.named_modules():
                if isinstance(module, nn.Linear) and any(
                        p.search(name + '.weight') for p in patterns):
                    targets[name] = module
        return targets

    def attach(self, detector, adapter):
        self.adapter = adapter
        for name, linear in self.target_linears(detector, adapter).items():
            peft_layer = PeftLoRALinear(
                linear_sharing_parameters(linear),
                ADAPTER_NAME,
                r=self.rank,
                lora_alpha=self.alpha,
                lora_dropout=self.dropout,
                init_lora_weights=True)
            self._peft_layers[name] = peft_layer
            self._targets[name] = linear
            self.adapters[name.replace('.', '_')] = LoRAWeights(peft_layer)
            self._keep(
                ReplacedMethod(linear, 'forward',
                               functools.partial(self._forward, name)))
        return self

    def _sync_twin(self, name: str) -> nn.Module:
        """The peft layer of target ``name``, its base layer pointing at the
        target's current weight and bias.

        Why: ``model.to()`` / ``.cuda()`` keep parameter objects (only their
        data changes), but a conversion under
        ``torch.__future__.set_overwrite_module_params_on_conversion(True)``
        or a wrapper that re-creates parameters gives the target new ones.
        """
        peft_layer, target = self._peft_layers[name], self._targets[name]
        twin = peft_layer.get_base_layer()
        if twin.weight is not target.weight:
            twin.weight = target.weight
        if twin.bias is not target.bias:
            twin.bias = target.bias
        return peft_layer

    def _forward(self, name, *args, **kwargs):
        return self._sync_twin(name)(*args, **kwargs)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        for peft_layer in self._peft_layers.values():
            peft_layer.enable_adapters(self._enabled)

    @property
    def merged(self) -> bool:
        return any(layer.merged for layer in self._peft_layers.values())

    def merge(self) -> None:
        """Fold every update into its target's weight (inference)."""
        for name in self._peft_layers:
            self._sync_twin(name).merge(safe_merge=True)

    def unmerge(self) -> None:
        """Take the merged updates out of the targets' weights again."""
        for name, peft_layer in self._peft_layers.items():
            if peft_layer.merged:
                self._sync_twin(name).unmerge()

    def detach(self) -> None:
        self.unmerge()
        super().detach()

    def target_names(self) -> List[str]:
        return sorted(self._peft_layers)

    def signature(self):
        return dict(
            super().signature(),
            rank=self.rank,
            alpha=self.alpha,
            targets=self.target_names())
