"""Parameter-efficient prompt tuning for mmdet's GLIP and Grounding DINO.

Importing this package registers ``PromptTunedDetector`` (mmdet MODELS),
``PromptTuningHook``, ``TrainCostHook``, ``AtomicCheckpointHook``,
``FiniteLossHook`` and ``RandomStateHook`` (mmdet HOOKS), the prompt methods
(mmdet MODELS: ``SDPTPrompt``, ``DPTPrompt``, ``TextContextPrompt``,
``VisualDeepPrompt``, ``IndependentDualPrompt``) and safe loaders for mmengine
checkpoints under torch >= 2.6; for data and evaluation,
``ClassSubsetPrompt`` (mmdet TRANSFORMS), ``EvalReportHook`` (mmdet HOOKS) and
the benchmark settings (``benchmarks.apply_benchmark``).
"""
from . import checkpoint  # noqa: F401  (registers the checkpoint loaders)
from .cost import TrainCostHook
from .fusion import (FusionAdapter, GLIPFusionAdapter,
                     GroundingDINOFusionAdapter, fusion_adapter_for)
from .hooks import PromptCheckpointMismatch, PromptTuningHook
from .benchmarks import apply_benchmark
from .reliability import (AtomicCheckpointHook, FiniteLossHook,
                          NonFiniteLossError, RandomStateHook)
from .prompt_tuned_detector import (PromptTunedDetector,
                                    trainable_parameter_report)
from .dpt import ClassAwareVisualPrompt, DPTPrompt
from .independent_dual import IndependentDualPrompt
from .method import PromptMethod
from .reports import EvalReportHook
from .sdpt import (FusionPromptMethod, InverseProjection, SDPTPrompt,
                   UnifiedPrototypePrompt)
from .text_prompt import TextContextPrompt
from .transforms import ClassSubsetPrompt
from .visual_prompt import VisualDeepPrompt

__all__ = [
    'FusionAdapter', 'GLIPFusionAdapter', 'GroundingDINOFusionAdapter',
    'fusion_adapter_for', 'PromptCheckpointMismatch', 'PromptTuningHook',
    'PromptTunedDetector', 'trainable_parameter_report', 'TrainCostHook',
    'PromptMethod', 'FusionPromptMethod', 'InverseProjection', 'SDPTPrompt',
    'UnifiedPrototypePrompt', 'IndependentDualPrompt', 'TextContextPrompt',
    'VisualDeepPrompt', 'DPTPrompt', 'ClassAwareVisualPrompt',
    'apply_benchmark', 'ClassSubsetPrompt', 'EvalReportHook',
    'AtomicCheckpointHook', 'FiniteLossHook', 'NonFiniteLossError',
    'RandomStateHook'
]
