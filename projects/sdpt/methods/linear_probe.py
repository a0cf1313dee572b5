"""Linear probing (GLIP's ``linear_prob``): only the final prediction layers
train.

Nothing is added to the detector; the method names the parameters that
train, through :meth:`PromptMethod.trainable_patterns` (the detector's
adapter knows where they are, ``DetectorAdapter.prediction_layer_patterns``):

* GLIP: the head's box and centerness convolutions (``bbox_pred``,
  ``centerness``), the text projection of the alignment score
  (``dot_product_projection_text``) and the alignment score's scale and
  biases (``log_scale``, ``bias_lang``, ``bias0``), all in
  ``bbox_head.head``.
* Grounding DINO: the classification (``ContrastiveEmbed``: its logit scale)
  and box-regression branches of the head (``bbox_head.cls_branches``,
  ``bbox_head.reg_branches``: every decoder layer's and the encoder
  proposals').

Prompt checkpoints then hold those detector parameters, under their mmdet
names, and are completed with the base weights on load as any other.

Example::

    prompt = dict(type='LinearProbing')
"""
from mmdet.registry import MODELS

from .base import DetectorSubsetMethod


@MODELS.register_module()
class LinearProbing(DetectorSubsetMethod):
    """Train the detector's final prediction layers only (no options)."""

    def select_patterns(self, detector, adapter):
        return adapter.prediction_layer_patterns()
