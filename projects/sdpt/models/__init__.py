"""The shared wrapper (``PromptTunedDetector``) and the per-detector adapters."""
from .fusion_adapters import (FusionAdapter, FusionLayer, GLIPFusionAdapter,
                              GroundingDINOFusionAdapter, fusion_adapter_for)
from .prompt_tuned_detector import (MissingLanguageModelError,
                                    PromptTunedDetector,
                                    trainable_parameter_report)

__all__ = [
    'FusionAdapter', 'FusionLayer', 'GLIPFusionAdapter',
    'GroundingDINOFusionAdapter', 'fusion_adapter_for',
    'MissingLanguageModelError', 'PromptTunedDetector',
    'trainable_parameter_report'
]
