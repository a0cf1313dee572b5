"""The shared wrapper: ``PromptTunedDetector`` builds mmdet's detector,
attaches a method, freezes the rest and reports what trains."""
from .prompt_tuned_detector import (
                                    MissingLanguageModelError,
                                    PromptTunedDetector,
                                    trainable_parameter_report,
)

__all__ = [
    'MissingLanguageModelError', 'PromptTunedDetector',
    'trainable_parameter_report'
]
