"""What differs between mmdet's GLIP and Grounding DINO, in small adapters:
where each fuses image and text and how its masks read (``adapters.py``),
where its text encoder is configured (``text_encoder.py``), and GLIP's head
at the text encoder's width (``glip_head.py``)."""
from .adapters import (
                       DetectorAdapter,
                       FusionLayer,
                       GLIPAdapter,
                       GroundingDINOAdapter,
                       detector_adapter_for,
                       select_fusion_layers,
                       use_non_reentrant_checkpoint,
)
from .glip_head import SizedATSSVLFusionHead
from .text_encoder import set_text_encoder, text_encoder_paths

__all__ = [
    'DetectorAdapter', 'FusionLayer', 'GLIPAdapter', 'GroundingDINOAdapter',
    'detector_adapter_for', 'select_fusion_layers',
    'use_non_reentrant_checkpoint', 'SizedATSSVLFusionHead',
    'set_text_encoder', 'text_encoder_paths'
]
