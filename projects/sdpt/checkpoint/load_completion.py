"""A prompt checkpoint is completed with its base weights wherever it loads.

A prompt checkpoint holds only the tuned parameters. mmdet's and mmengine's
own doors (``DetInferencer``, ``init_detector``, ``load_checkpoint``,
``Runner.load_from``) and a plain ``torch.load`` + ``load_state_dict`` load
its state dict non-strictly into a freshly built detector: without help the
frozen base would stay random, silently.

The help is torch's own channel for state-dict versions: the state dict of a
prompt checkpoint carries its signature and card in
``state_dict._metadata['']['prompt_checkpoint']`` (written on save by
``PromptTuningHook``, and added on load by the project's checkpoint loaders
for files saved before), which ``torch.save``/``torch.load`` keep and
``load_state_dict`` hands to the root module's load hooks.
:func:`complete_on_load`, registered on every ``PromptTunedDetector``,
completes such a state dict with the base weights (the model's configured
``base_weights``, else those the checkpoint names) after the signature and
base-fingerprint checks, or raises :class:`BaseWeightsNotFound` naming the
file and the fix; a model that holds those base weights already (its frozen
weights have the card's fingerprint) takes the tuned parameters as they
are. A state dict that already holds the base (completed by
``tools/test.py``, ``--resume``, ``tools/infer.py``) loads as it is.
"""
import os.path as osp
import warnings
from collections import OrderedDict
from typing import Optional

from ..methods.trainable import METHOD_ATTR, allowed_trainable_names
from .prompt_checkpoint import (
    CARD_KEY,
    META_KEY,
    PromptCheckpointMismatch,
    base_fingerprint,
    card_of,
    complete_prompt_checkpoint,
    frozen_state,
)

#: Key in ``state_dict._metadata['']`` (the root module's entry).
STATE_MARKER = 'prompt_checkpoint'


class BaseWeightsNotFound(PromptCheckpointMismatch):
    """A prompt checkpoint loaded where its base weights cannot be found."""


def mark_prompt_state(state: dict, signature: dict, card: Optional[dict],
                      source: Optional[str] = None) -> OrderedDict:
    """``state`` (a prompt checkpoint's state dict) carrying its
    ``signature`` (``meta['prompt_tuning']``), ``card`` and ``source`` (the
    file, for messages) where ``load_state_dict`` hooks see them."""
    marked = OrderedDict(state)
    metadata = OrderedDict(getattr(state, '_metadata', None) or {})
    metadata[''] = dict(
        metadata.get('', {}),
        **{STATE_MARKER: dict(signature=signature, card=card,
                              source=source)})
    marked._metadata = metadata
    return marked


def mark_loaded_checkpoint(checkpoint, source: str):
    """A loaded checkpoint whose state dict carries its prompt metadata (a
    prompt-only checkpoint; anything else is returned unchanged)."""
    if not isinstance(checkpoint, dict):
        return checkpoint
    signature = (checkpoint.get('meta') or {}).get(META_KEY)
    state = checkpoint.get('state_dict')
    if not signature or signature.get('full_model') or not isinstance(
            state, dict):
        return checkpoint
    checkpoint['state_dict'] = mark_prompt_state(state, signature,
                                                 card_of(checkpoint), source)
    return checkpoint


def _base_weights(module, marker) -> Optional[str]:
    card = marker.get('card') or {}
    return (getattr(module, 'base_weights', None)
            or marker['signature'].get('base_weights')
            or card.get('base_weights'))


def complete_on_load(module, state_dict, prefix, local_metadata, strict,
                     missing_keys, unexpected_keys, error_msgs) -> None:
    """Load-state-dict pre-hook of a prompt-tuned detector (module
    docstring): completes a marked prompt-only state dict in place."""
    own = {k[len(prefix):]: v for k, v in state_dict.items()
           if k.startswith(prefix)}
    frozen = frozen_state(module)
    if not own or any(name in own for name in frozen):
        return  # a whole model (or the base weights alone): as it is
    marker = local_metadata.get(STATE_MARKER)
    if marker is None:
        trainable = set(allowed_trainable_names(module))
        if all(k in trainable or k.startswith(METHOD_ATTR + '.')
               for k in own):
            warnings.warn(
                f'Loading {len(own)} tuned parameters and none of the '
                f'detector\'s own: its frozen weights stay as they are now. '
                f'A prompt checkpoint file loads whole through mmengine\'s '
                f'load_checkpoint, DetInferencer, init_detector or '
                f'tools/infer.py.', stacklevel=2)
        return
    card = marker.get('card') or {}
    if card.get('base_fingerprint') and \
            card['base_fingerprint'] == base_fingerprint(module):
        return  # the base it was tuned on is loaded already: an overlay
    source = marker.get('source') or 'the prompt checkpoint'
    base = _base_weights(module, marker)
    if not base or ('://' not in str(base) and not osp.isfile(base)):
        raise BaseWeightsNotFound(
            f'{source} holds only the tuned parameters of '
            f'{marker["signature"].get("method")}; the base detector weights '
            f'it was tuned on' + (f', {base},' if base else '') +
            ' cannot be found, so the detector would stay random. Put the '
            'base weights there, or name them: model.base_weights=PATH in '
            'the config (--cfg-options model.base_weights=PATH), or '
            'tools/infer.py --base-weights PATH.')
    checkpoint = {
        'meta': {META_KEY: marker['signature'], CARD_KEY: marker.get('card')},
        'state_dict': own,
    }
    merged = complete_prompt_checkpoint(checkpoint, module, base, source)
    state_dict.update({prefix + k: v for k, v in merged.items()})
