"""Parameter-efficient prompt tuning for mmdet's GLIP and Grounding DINO.

Importing this package registers ``PromptTunedDetector`` (mmdet MODELS),
``PromptTuningHook``, ``AtomicCheckpointHook``, ``FiniteLossHook`` and
``RandomStateHook`` (mmdet HOOKS), the prompt methods (mmdet MODELS, e.g. ``SDPTPrompt``)
and safe loaders for mmengine checkpoints under torch >= 2.6.
"""
from . import checkpoint  # noqa: F401  (registers the checkpoint loaders)
from .fusion import (FusionAdapter, GLIPFusionAdapter,
                     GroundingDINOFusionAdapter, fusion_adapter_for)
from .hooks import PromptCheckpointMismatch, PromptTuningHook
from .reliability import (AtomicCheckpointHook, FiniteLossHook,
                          NonFiniteLossError, RandomStateHook)
from .prompt_tuned_detector import (PromptTunedDetector,
                                    trainable_parameter_report)
from .sdpt import (FusionPromptMethod, InverseProjection, SDPTPrompt,
                   UnifiedPrototypePrompt)

__all__ = [
    'FusionAdapter', 'GLIPFusionAdapter', 'GroundingDINOFusionAdapter',
    'fusion_adapter_for', 'PromptCheckpointMismatch', 'PromptTuningHook',
    'PromptTunedDetector', 'trainable_parameter_report', 'FusionPromptMethod', 'InverseProjection', 'SDPTPrompt',
    'UnifiedPrototypePrompt', 'AtomicCheckpointHook', 'FiniteLossHook',
    'NonFiniteLossError', 'RandomStateHook'
]
