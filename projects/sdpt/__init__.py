"""Parameter-efficient prompt tuning for mmdet's GLIP and Grounding DINO.

Importing this package registers ``PromptTunedDetector`` (mmdet MODELS),
``PromptTuningHook`` (mmdet HOOKS), the prompt methods (mmdet MODELS, e.g. ``SDPTPrompt``)
and safe loaders for mmengine checkpoints under torch >= 2.6; for data and
evaluation, ``ClassSubsetPrompt`` (mmdet TRANSFORMS), ``EvalReportHook``
(mmdet HOOKS) and the benchmark settings (``benchmarks.apply_benchmark``).
"""
from . import checkpoint  # noqa: F401  (registers the checkpoint loaders)
from .fusion import (FusionAdapter, GLIPFusionAdapter,
                     GroundingDINOFusionAdapter, fusion_adapter_for)
from .hooks import PromptCheckpointMismatch, PromptTuningHook
from .benchmarks import apply_benchmark
from .prompt_tuned_detector import (PromptTunedDetector,
                                    trainable_parameter_report)
from .reports import EvalReportHook
from .sdpt import (FusionPromptMethod, InverseProjection, SDPTPrompt,
                   UnifiedPrototypePrompt)
from .transforms import ClassSubsetPrompt

__all__ = [
    'FusionAdapter', 'GLIPFusionAdapter', 'GroundingDINOFusionAdapter',
    'fusion_adapter_for', 'PromptCheckpointMismatch', 'PromptTuningHook',
    'PromptTunedDetector', 'trainable_parameter_report', 'FusionPromptMethod', 'InverseProjection', 'SDPTPrompt',
    'UnifiedPrototypePrompt', 'apply_benchmark', 'ClassSubsetPrompt',
    'EvalReportHook'
]
