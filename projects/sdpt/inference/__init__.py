"""Inference on image files: a prompt-tuned detector (base weights + a prompt
checkpoint, or a full checkpoint) or a prompt bank (many tasks on one frozen
base); ``tools/infer.py`` is its command line."""
from .images import BadImage, Skipped, collect_images, read_image
from .inferencer import (
                         InferenceSummary,
                         NoClassNamesError,
                         PromptInferencer,
                         parse_class_names,
)
from .loading import LoadedWeights, build_detector, load_weights
from .prompt_bank import PromptBank, PromptBankError, TaskBatch

__all__ = [
    'BadImage', 'Skipped', 'collect_images', 'read_image', 'InferenceSummary',
    'NoClassNamesError', 'PromptInferencer', 'parse_class_names',
    'LoadedWeights', 'build_detector', 'load_weights', 'PromptBank',
    'PromptBankError', 'TaskBatch'
]
