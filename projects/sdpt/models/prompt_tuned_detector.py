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
from typing import Optional, Sequence

from mmdet.registry import MODELS
from mmengine.logging import print_log

from ..checkpoint.load_completion import complete_on_load
from ..detectors.adapters import detector_adapter_for
from ..detectors.text_encoder import text_encoder_paths
from ..methods.trainable import (
    METHOD_ATTR,
    allowed_trainable_names,
    format_report,
    freeze_all_but,
    trainable_parameter_report,
)


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


@MODELS.register_module()
def PromptTunedDetector(detector: dict,
                        prompt: Optional[dict] = None,
                        extra_trainable: Sequence[str] = (),
                        base_weights: Optional[str] = None,
                        backbone: Optional[dict] = None,
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
        base_weights (str, optional): the detector weights a prompt
            checkpoint is completed with wherever it is loaded into this
            model (``checkpoint/load_completion.py``); by default those the
            checkpoint names.
        backbone (dict, optional): options merged into
            ``detector.backbone``. mmdet's ``init_detector`` reads
            ``cfg.model.backbone`` (to unset its ``init_cfg``), so the
            project's configs give an empty one.
        data_preprocessor: accepted for mmdet config compatibility; the
            detector's own is used (set it inside ``detector``).
    """
    if data_preprocessor is not None and 'data_preprocessor' not in detector:
        detector = dict(detector, data_preprocessor=data_preprocessor)
    if backbone:
        detector = dict(detector, backbone=dict(detector['backbone'],
                                                **backbone))
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
    adapter.fit_detections_per_image(model)
    method = None
    if prompt is not None:
        method = MODELS.build(prompt)
        method.attach(model, adapter)
        model.add_module(METHOD_ATTR, method)
    model.extra_trainable = list(extra_trainable)
    model.base_weights = base_weights
    # A prompt-only state dict is completed with its base weights on load,
    # through mmdet's and mmengine's loaders as through ours.
    model.register_load_state_dict_pre_hook(complete_on_load)
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
