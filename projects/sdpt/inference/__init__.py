"""Inference on image files: a prompt-tuned detector (base weights + a prompt
checkpoint, or a full checkpoint) or a prompt bank; ``tools/infer.py`` is its
command line."""
from .images import BadImage, Skipped, collect_images, read_image
from .inferencer import (
                         InferenceSummary,
                         NoClassNamesError,
                         PromptInferencer,
                         parse_class_names,
)
from .loading import LoadedWeights, build_detector, load_weights

__all__ = [
    'BadImage', 'Skipped', 'collect_images', 'read_image', 'InferenceSummary',
    'NoClassNamesError', 'PromptInferencer', 'parse_class_names',
    'LoadedWeights', 'build_detector', 'load_weights'
]
