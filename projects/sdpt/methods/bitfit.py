"""BitFit: every bias term of the detector trains, and nothing else.

Nothing is added to the detector; the method names the parameters that
train, through :meth:`PromptMethod.trainable_patterns`: every parameter
called ``bias`` (the additive bias of each linear, convolution,
normalisation and attention layer, in the image backbone, the text encoder,
the neck, the fusion and the head). Parameters that merely contain the word
(GLIP's alignment-score ``bias0`` and ``bias_lang``, Swin's
``relative_position_bias_table``) are not bias terms of a layer and stay
frozen.

Prompt checkpoints hold the biases under their mmdet names and are
completed with the base weights on load as any other.

Example::

    prompt = dict(type='BitFit')
"""
from mmdet.registry import MODELS

from .base import DetectorSubsetMethod

BIAS_PATTERN = r'(^|\.)bias$'


@MODELS.register_module()
class BitFit(DetectorSubsetMethod):
    """Train every ``bias`` parameter of the detector (no options)."""

    def select_patterns(self, detector, adapter):
        return [BIAS_PATTERN]
