"""Which parameters of a detector carrying a method train: the one rule the
wrapper's build (``models/prompt_tuned_detector.py``), the training check
(``PromptTuningHook``) and prompt checkpoints share, and the count a user
sees (``trainable params: N || all params: M || trainable%: P``, as peft's
``print_trainable_parameters``)."""
import re
from typing import Dict, List, Sequence

import torch.nn as nn

#: The attribute (and state-dict prefix) under which a detector holds its
#: method: ``detector.prompt_tuning``, ``prompt_tuning.*``.
METHOD_ATTR = 'prompt_tuning'


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
    """:func:`trainable_parameter_report` as one line, as peft prints it."""
    return (f"trainable params: {report['trainable']:,} || all params: "
            f"{report['total']:,} || trainable%: {report['percent']:.4f}")


def freeze_all_but(model: nn.Module, names: Sequence[str]) -> None:
    """Only the parameters ``names`` of ``model`` require a gradient."""
    keep = set(names)
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)
