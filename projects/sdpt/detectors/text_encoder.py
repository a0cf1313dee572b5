"""Where a GLIP or Grounding DINO config names its text encoder.

Both read the Hugging Face name or directory of their BERT from
``language_model.name``; GLIP's head reads it again from
``bbox_head.lang_model_name`` (its tokenizer for the alignment targets). A
local copy of the encoder has to be set in both places.
"""
from typing import List


def text_encoder_paths(detector: dict) -> List[str]:
    """The Hugging Face names / directories ``detector`` (an mmdet detector
    config) reads its text encoder from."""
    names = [(detector.get('language_model') or {}).get('name'),
             (detector.get('bbox_head') or {}).get('lang_model_name')]
    return sorted({n for n in names if n})


def set_text_encoder(detector: dict, path: str) -> None:
    """Point every place of ``detector`` (an mmdet detector config) that
    names the text encoder at ``path``."""
    detector['language_model']['name'] = path
    if 'lang_model_name' in (detector.get('bbox_head') or {}):
        detector['bbox_head']['lang_model_name'] = path
