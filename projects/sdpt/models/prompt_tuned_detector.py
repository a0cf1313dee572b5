"""Build an mmdet detector with a prompt-tuning method attached and frozen.

Like peft's ``inject_adapter_in_model``, this returns the mmdet detector
itself (a ``GLIP`` or ``GroundingDINO`` instance) with the method hooked in as
``detector.prompt_tuning``: parameter names of the base model are unchanged,
so mmdet's released weights load with ``load_from`` and mmdet's own inference
APIs keep working. Everything except the method's parameters (and the extra
parameters a config names) is frozen here, at build time, before the runner
wraps the model in DDP.

Config::

    model = dict(
        type='PromptTunedDetector',
        detector=<unmodified mmdet GLIP / GroundingDINO model config>,
        prompt=dict(type='SDPTPrompt', num_tokens=100, layers='all'),
        extra_trainable=[])  # regexes of parameter names, for ablations

What trains: the method's own parameters (``prompt_tuning.*``), the
detector parameters the method names (``trainable_patterns()``: linear
probing's prediction layers, BitFit's biases) and ``extra_trainable``
(:func:`allowed_trainable_names`, the single rule).

The two ends of every comparison use the same wrapper: ``prompt=None`` is the
zero-shot detector (nothing trains; evaluate it with ``tools/test.py``) and
``prompt=None, extra_trainable=['.*']`` is full fine-tuning.
"""
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.logging import print_log

from ..detectors.adapters import detector_adapter_for
from ..detectors.text_encoder import text_encoder_paths

METHOD_ATTR = 'prompt_tuning'


class MissingLanguageModelError(OSError):
    pass


def language_model_message(missing: Sequence[str], err=None) -> str:
    name = missing[0]
    return (
        f'The text encoder {", ".join(map(repr, missing))} is not a local '
        f'directory and could not be loaded from the Hugging Face cache '
        f'(offline, or never downloaded)'
        + (f': {str(err).splitlines()[0].rstrip(".")}' if err else '') + '. '
        f'On a machine with internet, save it once:\n'
        f'  python -c "from transformers import AutoTokenizer, BertModel; '
        f"AutoTokenizer.from_pretrained('{name}').save_pretrained('DIR'); "
        f"BertModel.from_pretrained('{name}').save_pretrained('DIR')\"\n"
        f'copy DIR here and point the config at it: --cfg-options '
        f'model.detector.language_model.name=DIR (GLIP also '
        f'model.detector.bbox_head.lang_model_name=DIR), or set '
        f'HF_HOME to a cache that holds it.')


def trainable_patterns(model: nn.Module) -> List[str]:
    """Regexes of the detector parameters that train besides the method's
    own: those the method names (``PromptMethod.trainable_patterns``: linear
    probing, BitFit) and the config's ``extra_trainable``."""
    method = getattr(model, METHOD_ATTR, None)
    method_patterns = method.trainable_patterns() if method is not None \
        else []
    return list(method_patterns) + list(getattr(model, 'extra_trainable', ()))


def allowed_trainable_names(model: nn.Module) -> List[str]:
    """Names of the parameters that may train in a prompt-tuned model: the
    method's own (``prompt_tuning.*``) and those :func:`trainable_patterns`
    names. The one rule the build, the training check and prompt checkpoints
    share."""
    patterns = [re.compile(p) for p in trainable_patterns(model)]
    names = []
    for name, _ in model.named_parameters():
        if name.startswith(METHOD_ATTR + '.') or any(
                p.search(name) for p in patterns):
            names.append(name)
    return names


def trainable_parameter_report(model: nn.Module) -> Dict:
    """Counts of trainable and all parameters (each tensor counted once)."""
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return dict(
        trainable=trainable,
        total=total,
        percent=100.0 * trainable / max(total, 1))


def format_report(report: Dict) -> str:
    return (f"trainable params: {report['trainable']:,} || all params: "
            f"{report['total']:,} || trainable%: {report['percent']:.4f}")


def freeze_all_but(model: nn.Module, names: Sequence[str]) -> None:
    keep = set(names)
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)


@MODELS.register_module()
def PromptTunedDetector(detector: dict,
                        prompt: Optional[dict] = None,
                        extra_trainable: Sequence[str] = (),
                        data_preprocessor=None,
                        init_cfg=None):
    """Build ``detector``, attach the ``prompt`` method, freeze the rest.

    Args:
        detector (dict): an mmdet GLIP or GroundingDINO model config.
        prompt (dict, optional): a prompt method registered in mmdet's
            MODELS (``SDPTPrompt``, ``LoRA``, ``BitFit``, ...: every
            ``PromptMethod`` in ``projects/sdpt/methods``); None for the
            zero-shot detector or full fine-tuning.
        extra_trainable (list[str]): regexes of detector parameter names that
            also train (ablations); empty by default.
        data_preprocessor: accepted for mmdet config compatibility; the
            detector's own is used (set it inside ``detector``).
    """
    if data_preprocessor is not None and 'data_preprocessor' not in detector:
        detector = dict(detector, data_preprocessor=data_preprocessor)
    try:
        model = MODELS.build(detector)
    except OSError as err:
        names = text_encoder_paths(detector)
        missing = [n for n in names if not osp.isdir(n)]
        if not missing:
            raise
        raise MissingLanguageModelError(
            language_model_message(missing, err)) from None
    adapter = detector_adapter_for(model)
    method = None
    if prompt is not None:
        method = MODELS.build(prompt)
        method.attach(model, adapter)
        model.add_module(METHOD_ATTR, method)
    model.extra_trainable = list(extra_trainable)
    freeze_all_but(model, allowed_trainable_names(model))
    named = [n for n, _ in model.named_parameters()]
    for source, patterns in (
            ('model.extra_trainable', model.extra_trainable),
            (f'{type(method).__name__}.trainable_patterns()',
             method.trainable_patterns() if method is not None else [])):
        for pattern in patterns:
            if not any(re.search(pattern, n) for n in named):
                raise ValueError(
                    f'{source} pattern {pattern!r} matches no parameter of '
                    f'{type(model).__name__}.')
    print_log(
        f'{type(method).__name__ if method else "No prompt method"} on '
        f'{adapter.detector_name}: '
        f'{format_report(trainable_parameter_report(model))}',
        logger='current')
    return model
