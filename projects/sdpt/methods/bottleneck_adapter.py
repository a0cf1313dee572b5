"""Bottleneck adapters on the outputs of the image-text fusion attention.

Each adapted fusion layer gets two small residual MLPs (Houlsby-style
adapters), one per modality, applied to the outputs of mmdet's
``BiMultiHeadAttention`` (a forward hook on the attention instance)::

    out_v <- out_v + up_v(act(down_v(out_v)))     # (B, Nv, v_dim)
    out_l <- out_l + up_l(act(down_l(out_l)))     # (B, Nl, l_dim)

``down`` maps the width to ``bottleneck``, ``up`` back; ``up`` starts at
zero (weight and bias), so the untrained adapters are the identity and the
detector computes what the base model computes. The attention's outputs then
go through the block's layer scale and residual (``gamma_v``, ``gamma_l``) as
before.

Example::

    prompt = dict(type='FusionBottleneckAdapter', bottleneck=64,
                  layers='all')

Parameters per adapted layer: ``adapters['layer{i}'].image`` and ``.text``,
each ``down`` (bottleneck x width + bottleneck) and ``up`` (width x
bottleneck + width).
"""
from typing import Sequence, Union

import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from ..detectors.adapters import select_fusion_layers
from .base import PromptMethod

ACTIVATIONS = {'relu': nn.ReLU, 'gelu': nn.GELU}


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))`` with ``up`` initialised at zero."""

    def __init__(self, width: int, bottleneck: int, activation: str = 'relu'):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.up(self.act(self.down(x)))


class ModalityAdapters(nn.Module):
    """The image and text adapters of one fusion layer."""

    def __init__(self, v_dim: int, l_dim: int, bottleneck: int,
                 activation: str):
        super().__init__()
        self.image = BottleneckAdapter(v_dim, bottleneck, activation)
        self.text = BottleneckAdapter(l_dim, bottleneck, activation)


@MODELS.register_module()
class FusionBottleneckAdapter(PromptMethod):
    """Residual bottleneck adapters on the fusion attention's outputs.

    Args:
        bottleneck (int): hidden width of every adapter.
        layers (str | list[int]): ``'all'`` fusion layers or their indices.
        activation (str): ``'relu'`` or ``'gelu'``.
    """

    def __init__(self,
                 bottleneck: int = 64,
                 layers: Union[str, Sequence[int]] = 'all',
                 activation: str = 'relu'):
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f'bottleneck must be >= 1, got {bottleneck}')
        if activation not in ACTIVATIONS:
            raise ValueError(f'activation must be one of '
                             f'{sorted(ACTIVATIONS)}, got {activation!r}')
        self.bottleneck = bottleneck
        self.layers = layers
        self.activation = activation
        self.adapters = nn.ModuleDict()

    def attach(self, detector, adapter):
        self.adapter = adapter
        for layer in select_fusion_layers(
                adapter.fusion_layers(detector), self.layers):
            key = f'layer{layer.index}'
            self.adapters[key] = ModalityAdapters(
                layer.v_dim, layer.l_dim, self.bottleneck, self.activation)
            # the adapters run inside the detector's checkpointed block
            adapter.make_checkpointing_gradient_safe(layer)
            self._keep(
                layer.attention.register_forward_hook(
                    self._make_output_hook(key)))
        return self

    def _make_output_hook(self, key):

        def adapt_outputs(module, args, output):
            if not self.enabled:
                return None
            out_v, out_l = output
            adapters = self.adapters[key]
            return adapters.image(out_v), adapters.text(out_l)

        return adapt_outputs

    def signature(self):
        return dict(
            super().signature(),
            bottleneck=self.bottleneck,
            layers=sorted(self.adapters.keys()),
            activation=self.activation)
