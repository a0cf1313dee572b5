"""The shared wrapper (``PromptTunedDetector``), the per-detector adapters and
the prompt bank (many tasks on one detector)."""
from .fusion_adapters import (FusionAdapter, FusionLayer, GLIPFusionAdapter,
                              GroundingDINOFusionAdapter, fusion_adapter_for)
from .glip_head import SizedATSSVLFusionHead
from .prompt_bank import PromptBank, PromptBankError, TaskBatch
from .prompt_tuned_detector import (MissingLanguageModelError,
                                    PromptTunedDetector,
                                    trainable_parameter_report)

__all__ = [
    'FusionAdapter', 'FusionLayer', 'GLIPFusionAdapter',
    'GroundingDINOFusionAdapter', 'fusion_adapter_for',
    'MissingLanguageModelError', 'PromptTunedDetector',
    'trainable_parameter_report', 'PromptBank', 'PromptBankError',
    'TaskBatch', 'SizedATSSVLFusionHead'
]
