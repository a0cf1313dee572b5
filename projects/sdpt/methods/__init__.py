"""The prompt methods, one module each, and the registry-derived list of them.

Every method is a :class:`PromptMethod` registered in mmdet's ``MODELS``
(``model.prompt = dict(type='SDPTPrompt', ...)`` in a config);
:func:`registered_methods` lists them, so nothing else keeps a list.
"""
from typing import Dict

from .base import PromptMethod, ReplacedMethod
from .dpt import ClassAwareVisualPrompt, DPTPrompt
from .fusion_prompt import FusionPromptMethod, prompted_bi_attention
from .independent_dual import IndependentDualPrompt
from .sdpt import InverseProjection, SDPTPrompt, UnifiedPrototypePrompt
from .text_prompt import TextContextPrompt
from .visual_prompt import VisualDeepPrompt


def registered_methods() -> Dict[str, type]:
    """``{registered name: class}`` of every prompt method in the registry."""
    from mmdet.registry import MODELS
    return {
        name: cls
        for name, cls in sorted(MODELS.module_dict.items())
        if isinstance(cls, type) and issubclass(cls, PromptMethod)
    }


__all__ = [
    'PromptMethod', 'ReplacedMethod', 'FusionPromptMethod',
    'prompted_bi_attention', 'InverseProjection', 'UnifiedPrototypePrompt',
    'SDPTPrompt', 'IndependentDualPrompt', 'TextContextPrompt',
    'VisualDeepPrompt', 'DPTPrompt', 'ClassAwareVisualPrompt',
    'registered_methods'
]
