"""Build a prompt-tuned detector from its config and load its weights for
inference: base weights + a prompt checkpoint (checked against the
checkpoint's card), or one full checkpoint."""
import os.path as osp
from dataclasses import dataclass
from typing import Optional

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint

from ..checkpoint.prompt_checkpoint import (
    META_KEY,
    PromptCheckpointMismatch,
    base_fingerprint,
    card_of,
    complete_prompt_checkpoint,
    load_prompt_checkpoint,
    state_dict_of,
)
from ..methods.trainable import METHOD_ATTR


@dataclass
class LoadedWeights:
    """What was loaded: ``card`` of the prompt checkpoint (None for a full
    checkpoint or one without a card), ``fingerprint`` of the frozen base
    weights as loaded, ``source`` (for messages)."""
    card: Optional[dict]
    fingerprint: str
    source: str


def build_detector(cfg, device='cpu'):
    """``cfg.model`` built (random weights), in eval mode on ``device``."""
    register_all_modules()
    model = MODELS.build(cfg.model)
    return model.to(device).eval()


def _require_file(path, what):
    if path and '://' not in str(path) and not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path}: no such file.')


def load_weights(model, *, base_weights: Optional[str] = None,
                 prompt: Optional[str] = None,
                 checkpoint: Optional[str] = None,
                 allow_base_mismatch: bool = False,
                 for_bank: bool = False) -> LoadedWeights:
    """Load weights into ``model`` (built by :func:`build_detector`).

    * ``prompt``: a prompt checkpoint, completed with ``base_weights`` (else
      the base weights its metadata names) after the signature and
      base-fingerprint checks (``engine/prompt_card.py``);
    * ``checkpoint``: a full checkpoint (every detector parameter: full
      fine-tuning, ``save_full_model=True``, an mmdet release);
    * only ``base_weights``: the base detector (with the method's initial
      parameters, if it has any; ``for_bank``: a prompt bank brings each
      task's, so that is not warned about).

    Every entry of the model must be in what is loaded: a missing one is an
    error naming it.
    """
    if prompt and checkpoint:
        raise ValueError('Give a prompt checkpoint (with base weights) or a '
                         'full checkpoint, not both.')
    for path, what in ((prompt, 'prompt checkpoint'),
                       (checkpoint, 'checkpoint'),
                       (base_weights, 'base weights')):
        _require_file(path, what)
    card = None
    if prompt:
        loaded, meta = load_prompt_checkpoint(prompt)
        base = base_weights or meta.get('base_weights')
        _require_file(base, f'base weights (named by {prompt})'
                      if not base_weights else 'base weights')
        if meta.get('full_model'):
            state = state_dict_of(loaded)
        else:
            state = complete_prompt_checkpoint(
                loaded, model, base, prompt,
                allow_base_mismatch=allow_base_mismatch)
        card = card_of(loaded)
        source = prompt
    elif checkpoint:
        loaded = _load_checkpoint(checkpoint, map_location='cpu')
        meta = (loaded.get('meta') or {}).get(META_KEY)
        if meta is not None and not meta.get('full_model'):
            raise PromptCheckpointMismatch(
                f'{checkpoint} is a prompt checkpoint (only the '
                f'{meta.get("method")} parameters): pass it as the prompt '
                f'checkpoint (--prompt) with the base weights.')
        state = state_dict_of(loaded)
        source = checkpoint
    elif base_weights:
        state = state_dict_of(_load_checkpoint(base_weights,
                                               map_location='cpu'))
        source = base_weights
        if any(True for _ in getattr(model, METHOD_ATTR,
                                     torch.nn.Module()).parameters()):
            if not for_bank:
                print_log(
                    'No prompt checkpoint: the method\'s parameters keep '
                    'their initial values (pass --prompt for tuned ones).',
                    logger='current', level=30)
            state = dict(state, **{
                k: v for k, v in model.state_dict().items()
                if k.startswith(METHOD_ATTR + '.')})
    else:
        raise ValueError('No weights: give base weights (and a prompt '
                         'checkpoint) or a full checkpoint.')
    _load_complete(model, state, source)
    return LoadedWeights(card=card, fingerprint=base_fingerprint(model),
                         source=source)


def _load_complete(model, state, source):
    """``load_state_dict`` that refuses a state missing model entries
    (a tensor shared under two names, as LoRA's base layers share the
    detector's weights, counts once)."""
    needed = [n for n, _ in model.named_parameters()] + [
        n for n, _ in model.named_buffers()
    ]
    own = model.state_dict()
    missing = sorted(n for n in needed if n in own and n not in state)
    if missing:
        raise PromptCheckpointMismatch(
            f'{source} (with its base weights) lacks {len(missing)} '
            f'entries of this model, e.g. {missing[:4]}: it was saved for '
            f'another config. Use the config it was trained with.')
    model.load_state_dict({k: v for k, v in state.items() if k in own},
                          strict=False)
