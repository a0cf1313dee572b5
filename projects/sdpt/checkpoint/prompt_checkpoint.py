"""Prompt checkpoints and their cards.

A prompt checkpoint holds only the tuned parameters; it is useful only on the
base detector it was tuned on. Next to the method's signature
(``meta['prompt_tuning']``, compared on load) it carries a *card*
(``meta['prompt_card']``) with what a user needs to trust and reuse it:

========================  ==================================================
``method``, ``signature`` the method and every option a checkpoint must match
``detector``              the base detector type (``GLIP``, ``GroundingDINO``)
``base_fingerprint``      ``sha256:...`` of the frozen base weights (every
                          state-dict entry that is not trained), hashed once
                          per run, before the first step
``base_weights``          the base weights file the run started from
``classes``               the class names in label order
``task``                  benchmark / dataset / shots / seed of the run
``metrics``               the validation metrics of these weights when the
                          run validated them at the save's iteration, else
                          the last ones before it (``metrics_iter``: the
                          iteration they were measured)
``trainable``, ``total``  trainable and all parameters
``toolbox_version``       ``projects.sdpt`` version (+ git commit)
========================  ==================================================

Completing a prompt checkpoint with base weights
(:func:`complete_prompt_checkpoint`: ``tools/test.py``, ``--resume``,
``tools/infer.py``, the prompt bank) hashes those weights the same way and
refuses a different fingerprint (:class:`BaseWeightsMismatch`, naming both),
unless ``allow_base_mismatch`` is set. A checkpoint saved before cards
existed still loads, with a warning that nothing can be checked.
"""
import datetime
import hashlib
import json
from collections import OrderedDict
from typing import Dict, Optional

import mmdet
import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint

from ..methods.trainable import (
    METHOD_ATTR,
    allowed_trainable_names,
    trainable_parameter_report,
)
from ..version import toolbox_version

#: ``meta`` key of the method signature (compared on load)
META_KEY = 'prompt_tuning'
#: ``meta`` key of the card (see the module docstring)
CARD_KEY = 'prompt_card'
CARD_VERSION = 1
#: Metadata next to the method's signature in a prompt checkpoint.
RECORD_ONLY = ('full_model', 'base_weights')
#: The option that loads a prompt checkpoint onto other base weights anyway
#: (config key, hook argument and API keyword; ``--allow-base-mismatch``).
OVERRIDE = 'allow_base_mismatch'


class PromptCheckpointMismatch(ValueError):
    """A prompt checkpoint that does not fit the model it is loaded onto."""


class BaseWeightsMismatch(PromptCheckpointMismatch):
    """Base weights other than those the prompts were tuned on."""


def state_dict_of(checkpoint) -> dict:
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and key in checkpoint:
            return checkpoint[key]
    return checkpoint


def frozen_state(model) -> 'OrderedDict[str, torch.Tensor]':
    """The state-dict entries of ``model`` that no tuning changes: all but
    the method's own (``prompt_tuning.*``) and the detector parameters it
    trains (``allowed_trainable_names``)."""
    trainable = set(allowed_trainable_names(model))
    return OrderedDict(
        (k, v) for k, v in model.state_dict().items()
        if not k.startswith(METHOD_ATTR + '.') and k not in trainable)


def weights_fingerprint(state: Dict[str, torch.Tensor]) -> str:
    """``sha256:<hex>`` over the names, dtypes, shapes and bytes of
    ``state``, in name order (independent of device and dict order)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to('cpu').contiguous()
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return 'sha256:' + digest.hexdigest()


def base_fingerprint(model) -> str:
    """Fingerprint of ``model``'s frozen base weights as loaded now."""
    return weights_fingerprint(frozen_state(model))


def short(fingerprint: Optional[str]) -> str:
    """The first 12 hex digits (what messages show)."""
    if not fingerprint:
        return 'none'
    return fingerprint.split(':', 1)[-1][:12]


def card_of(checkpoint) -> Optional[dict]:
    return ((checkpoint or {}).get('meta') or {}).get(CARD_KEY)


def build_card(model, *, fingerprint: str, base_weights=None, classes=None,
               task=None, experiment=None, metrics=None, metrics_iter=None,
               iteration=None) -> dict:
    """The card of ``model``'s method (see the module docstring)."""

    method = getattr(model, METHOD_ATTR)
    signature = method.signature()
    counts = trainable_parameter_report(model)
    card = dict(
        card_version=CARD_VERSION,
        method=signature['method'],
        signature=signature,
        detector=signature['detector'],
        base_fingerprint=fingerprint,
        base_weights=base_weights,
        classes=list(classes) if classes else None,
        task=dict(task or {}),
        experiment=dict(experiment or {}),
        metrics=dict(metrics or {}),
        metrics_iter=metrics_iter,
        iter=iteration,
        trainable=counts['trainable'],
        total=counts['total'],
        trainable_percent=counts['percent'],
        toolbox_version=toolbox_version(),
        mmdet_version=str(mmdet.__version__),
        torch_version=str(torch.__version__),
        saved_at=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'))
    # plain JSON types only: torch's safe loader refuses any other pickled
    # class (config dicts, numpy scalars, torch's version string)
    return json.loads(json.dumps(card, default=_plain))


def set_card_metrics(checkpoint: dict, metrics: dict,
                     metrics_iter: int) -> dict:
    """The card of a saved ``checkpoint`` (updated in place) with
    ``metrics`` measured at ``metrics_iter``."""
    card = card_of(checkpoint)
    if card is None:
        raise PromptCheckpointMismatch(
            'the checkpoint has no prompt card: only a prompt checkpoint '
            'saved by PromptTuningHook records metrics')
    card['metrics'] = json.loads(json.dumps(dict(metrics), default=_plain))
    card['metrics_iter'] = metrics_iter
    return card


def _plain(value):
    """A JSON-able form of a metric value (tensors, numpy scalars)."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, 'item'):
        return value.item()
    return str(value)


def check_prompt_checkpoint(meta: dict, model, source: str) -> None:
    """Raise :class:`PromptCheckpointMismatch` naming every difference
    between the signature in ``meta`` and ``model``'s method."""
    method = getattr(model, METHOD_ATTR, None)
    if method is None:
        raise PromptCheckpointMismatch(
            f'{source} is a prompt checkpoint ({meta.get("method")}) but the '
            f'model has no prompt-tuning method: use a config with '
            f"model.type='PromptTunedDetector'.")
    ours = method.signature()
    loose = set(RECORD_ONLY) | set(method.LOOSE_SIGNATURE_FIELDS)
    # 'method' and 'detector' first: they explain every other difference.
    keys = ['method', 'detector'] + sorted((set(meta) | set(ours)) - loose -
                                           {'method', 'detector'})
    diffs = [
        f'{k}: {meta.get(k)!r} in the checkpoint vs {ours.get(k)!r} in the '
        f'config' for k in keys if meta.get(k) != ours.get(k)
    ]
    if diffs:
        raise PromptCheckpointMismatch(
            f'Prompt checkpoint {source} does not match this model: ' +
            '; '.join(diffs) + '. Use the config it was trained with.')


def check_base_fingerprint(card: Optional[dict], fingerprint: str,
                           source: str, base_source: str,
                           allow_mismatch: bool = False) -> None:
    """Refuse base weights whose fingerprint differs from the card's.

    Without a card (a checkpoint saved before cards existed) nothing can be
    checked: a warning says so. With ``allow_mismatch`` a difference is a
    warning instead of :class:`BaseWeightsMismatch`.
    """
    if not card or not card.get('base_fingerprint'):
        print_log(
            f'{source} carries no prompt card (saved before cards existed): '
            f'no fingerprint of the base weights it was tuned on, so '
            f'{base_source} cannot be checked against them.',
            logger='current', level=30)
        return
    expected = card['base_fingerprint']
    if expected == fingerprint:
        return
    message = (
        f'{source} was tuned on base weights with fingerprint '
        f'{short(expected)} ({card.get("base_weights")}), but {base_source} '
        f'has fingerprint {short(fingerprint)}: the prompts are only '
        f'meaningful on the weights they were tuned on.')
    if allow_mismatch:
        print_log(message + f' Loading anyway ({OVERRIDE}).',
                  logger='current', level=30)
        return
    raise BaseWeightsMismatch(
        message + f' Use those base weights, or set {OVERRIDE}=True '
        f'(--{OVERRIDE.replace("_", "-")} / --cfg-options {OVERRIDE}=True) '
        f'to load them anyway.')


def complete_prompt_checkpoint(checkpoint: dict, model, base_weights,
                               source: str,
                               allow_base_mismatch: bool = False) -> dict:
    """The state dict of a whole model: ``base_weights`` (a detector
    checkpoint path) overlaid with the prompt checkpoint's parameters, after
    checking the signature and the base fingerprint. ``checkpoint`` is a
    loaded prompt checkpoint; ``model`` the prompt-tuned detector it goes
    onto."""
    meta = (checkpoint.get('meta') or {}).get(META_KEY) or {}
    check_prompt_checkpoint(meta, model, source)
    if base_weights is None:
        raise FileNotFoundError(
            f'{source} holds only prompt parameters; the base detector '
            f"weights are unknown. Set base_weights='<detector .pth>' in "
            f'the config (or --cfg-options base_weights=...).')
    base_checkpoint = _load_checkpoint(base_weights, map_location='cpu')
    if (base_checkpoint.get('meta') or {}).get(META_KEY):
        raise PromptCheckpointMismatch(
            f'base_weights {base_weights} is itself a prompt checkpoint; '
            f'point base_weights at the detector weights.')
    merged = {
        k: v
        for k, v in state_dict_of(base_checkpoint).items()
        if not k.startswith(METHOD_ATTR + '.')
    }
    # The frozen entries as the model will hold them once loaded: the base
    # file's values in the model's dtypes, the model's own where the file
    # has none (a non-strict load keeps them).
    frozen = frozen_state(model)
    loaded = {
        k: merged[k].to(v.dtype) if k in merged else v
        for k, v in frozen.items()
    }
    check_base_fingerprint(card_of(checkpoint), weights_fingerprint(loaded),
                           source, str(base_weights), allow_base_mismatch)
    merged.update(state_dict_of(checkpoint))
    return merged


def load_prompt_checkpoint(checkpoint, source: Optional[str] = None):
    """``(checkpoint, signature meta)`` of a prompt checkpoint, given as a
    path or as a loaded dict; :class:`PromptCheckpointMismatch` when it is
    not one (no prompt-tuning metadata)."""
    if isinstance(checkpoint, str):
        source = source or checkpoint
        checkpoint = _load_checkpoint(checkpoint, map_location='cpu',
                                      logger='silent')
    meta = (checkpoint.get('meta') or {}).get(META_KEY)
    if meta is None:
        raise PromptCheckpointMismatch(
            f'{source} is not a prompt checkpoint (no prompt-tuning '
            f'metadata; a detector checkpoint?): give the checkpoint a '
            f'prompt-tuning run saved (work_dirs/<config>/iter_*.pth); '
            f'detector weights are base weights, or a full checkpoint '
            f'(--checkpoint).')
    return checkpoint, meta


def read_checkpoint_meta(path: str) -> dict:
    """``{'signature', 'card', 'tensors', 'parameters'}`` of a checkpoint
    file (any mmengine checkpoint; the last two count its state dict)."""
    checkpoint = _load_checkpoint(path, map_location='cpu', logger='silent')
    state = state_dict_of(checkpoint)
    meta = checkpoint.get('meta') or {}
    return dict(
        signature=meta.get(META_KEY),
        card=meta.get(CARD_KEY),
        tensors=len(state),
        parameters=sum(
            v.numel() for v in state.values()
            if isinstance(v, torch.Tensor)))
