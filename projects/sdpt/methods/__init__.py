"""The prompt methods, one module each, and the registry-derived list of them.

Every method is a :class:`PromptMethod` registered in mmdet's ``MODELS``
(``model.prompt = dict(type='SDPTPrompt', ...)`` in a config);
:func:`registered_methods` lists them, so nothing else keeps a list.
"""
from typing import Dict

from mmdet.registry import MODELS

from .base import DetectorSubsetMethod, PromptMethod, ReplacedMethod
from .bitfit import BitFit
from .bottleneck_adapter import BottleneckAdapter, FusionBottleneckAdapter
from .class_features import LearnedClassFeatures
from .dpt import ClassAwareVisualPrompt, DPTPrompt
from .fusion_prompt import FusionPromptMethod
from .independent_dual import IndependentDualPrompt
from .language_prompt import LanguagePromptOffset
from .linear_probe import LinearProbing
from .lora import LoRA
from .maple import MaPLePrompt
from .placeholder_captions import PlaceholderCaptionMethod
from .prompted_attention import prompted_bi_attention
from .sdpt import InverseProjection, SDPTPrompt, UnifiedPrototypePrompt
from .text_prompt import TextContextPrompt
from .trainable import (
    METHOD_ATTR,
    allowed_trainable_names,
    trainable_parameter_report,
)
from .visual_prompt import VisualDeepPrompt


def registered_methods() -> Dict[str, type]:
    """``{registered name: class}`` of every prompt method in the registry."""
    return {
        name: cls
        for name, cls in sorted(MODELS.module_dict.items())
        if isinstance(cls, type) and issubclass(cls, PromptMethod)
    }


__all__ = [
    'PromptMethod', 'DetectorSubsetMethod', 'ReplacedMethod',
    'FusionPromptMethod', 'prompted_bi_attention', 'InverseProjection',
    'UnifiedPrototypePrompt', 'SDPTPrompt', 'IndependentDualPrompt',
    'TextContextPrompt', 'VisualDeepPrompt', 'DPTPrompt',
    'ClassAwareVisualPrompt', 'LanguagePromptOffset', 'LinearProbing',
    'BitFit', 'LoRA', 'FusionBottleneckAdapter', 'BottleneckAdapter',
    'MaPLePrompt', 'LearnedClassFeatures', 'PlaceholderCaptionMethod',
    'registered_methods', 'METHOD_ATTR',
    'allowed_trainable_names', 'trainable_parameter_report'
]
