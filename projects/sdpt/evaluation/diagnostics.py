"""Diagnostics of a tuned detector against its base, for the transfer suite.

* :func:`fusion_residual_removed`: the fusion layers add nothing (their
  layer scales ``gamma_v`` / ``gamma_l`` are zero while the context is
  open), so evaluating inside it measures how much a detector relies on
  image-text fusion for a task. Prompts in the fusion attention act only
  through that residual, so it also switches them off.
* :func:`fused_feature_change`: ``||F - F_base|| / ||F_base||`` of the outputs
  of every fusion attention, image and text side, over one batch: how far a
  method moves the fused features.
* :func:`prompts_off_difference`: the largest difference between the
  predictions of the tuned detector with its method switched off and those
  of the base (0.0 when switching off gives the base exactly; None for
  methods that tune the detector's own weights and have no off state).
* :func:`loss_flatness`: the relative change of the mean training loss from
  the second-to-last to the last tenth of a run (how the suite checks that a
  schedule is long enough).
"""
import contextlib
from typing import Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn

from ..detectors.adapters import detector_adapter_for
from ..methods.base import DetectorSubsetMethod
from ..methods.trainable import METHOD_ATTR


def _fusion_blocks(detector: nn.Module) -> List[nn.Module]:
    """The modules holding each fusion layer's residual scales."""
    blocks = []
    for layer in detector_adapter_for(detector).fusion_layers(detector):
        block = detector.get_submodule(layer.name.rsplit('.', 1)[0])
        if not (hasattr(block, 'gamma_v') and hasattr(block, 'gamma_l')):
            raise ValueError(f'{layer.name}: its parent has no gamma_v / '
                             f'gamma_l residual scales')
        blocks.append(block)
    return blocks


@contextlib.contextmanager
def fusion_residual_removed(detector: nn.Module):
    """Zero every fusion layer's residual scales; restored on exit."""
    saved = []
    with torch.no_grad():
        for block in _fusion_blocks(detector):
            for name in ('gamma_v', 'gamma_l'):
                param = getattr(block, name)
                saved.append((param, param.detach().clone()))
                param.zero_()
    try:
        yield detector
    finally:
        with torch.no_grad():
            for param, value in saved:
                param.copy_(value)


@contextlib.contextmanager
def method_disabled(detector: nn.Module):
    """The detector's prompt method switched off (``enabled = False``)."""
    method = getattr(detector, METHOD_ATTR, None)
    if method is None:
        yield detector
        return
    method.enabled = False
    try:
        yield detector
    finally:
        method.enabled = True


def _fusion_outputs(detector: nn.Module, batch: Dict) -> List[tuple]:
    outputs, handles = [], []
    for layer in detector_adapter_for(detector).fusion_layers(detector):
        handles.append(layer.attention.register_forward_hook(
            lambda _m, _i, out: outputs.append(
                tuple(o.detach().float() for o in out[:2]))))
    try:
        with torch.no_grad():
            predictions = detector.test_step(batch)
    finally:
        for handle in handles:
            handle.remove()
    return outputs, predictions


def _relative_change(tuned: Sequence, base: Sequence) -> Optional[float]:
    if len(tuned) != len(base) or any(
            t.shape != b.shape for t, b in zip(tuned, base)):
        return None  # e.g. text prompts add tokens to the text side
    num = sum(float((t - b).pow(2).sum()) for t, b in zip(tuned, base))
    den = sum(float(b.pow(2).sum()) for b in base)
    return (num / den)**0.5 if den > 0 else None


def fused_feature_change(tuned: nn.Module, base: nn.Module,
                         batch: Dict) -> Dict[str, Optional[float]]:
    """``{'image': r, 'text': r}``, r = ||F - F_base|| / ||F_base|| over
    the outputs of every fusion attention on ``batch``."""
    tuned_out, _ = _fusion_outputs(tuned, batch)
    base_out, _ = _fusion_outputs(base, batch)
    return {
        side: _relative_change([o[i] for o in tuned_out],
                               [o[i] for o in base_out])
        for i, side in enumerate(('image', 'text'))
    }


def _prediction_tensors(predictions) -> List[torch.Tensor]:
    tensors = []
    for sample in predictions:
        inst = sample.pred_instances
        tensors += [inst.bboxes.float(), inst.scores.float(),
                    inst.labels.float()]
    return tensors


def has_off_state(detector: nn.Module) -> bool:
    """Whether the detector's method can be switched off (methods that
    tune the detector's own weights cannot: their values *are* the
    detector's)."""
    method = getattr(detector, METHOD_ATTR, None)
    return method is not None and not isinstance(method,
                                                 DetectorSubsetMethod)


def prompts_off_difference(tuned: nn.Module, base: nn.Module,
                           batch: Dict) -> Optional[float]:
    """max |prediction of the tuned detector, method off - of the base| on
    ``batch``; None when the method has no off state."""
    if not has_off_state(tuned):
        return None
    with method_disabled(tuned):
        with torch.no_grad():
            off = _prediction_tensors(tuned.test_step(batch))
    with torch.no_grad():
        ref = _prediction_tensors(base.test_step(batch))
    if len(off) != len(ref) or any(a.shape != b.shape
                                   for a, b in zip(off, ref)):
        return float('inf')
    return max((float((a - b).abs().max()) if a.numel() else 0.0
                for a, b in zip(off, ref)), default=0.0)


def prompts_off_check(tuned: nn.Module, base: nn.Module,
                      batches: Iterable[Dict]) -> Optional[Dict]:
    """:func:`prompts_off_difference` over every batch of ``batches`` (a
    whole split): ``max_diff`` over them, how many ``batches`` ran, how
    many ``failed`` (raised) and the first error. None when the method has
    no off state."""
    if not has_off_state(tuned):
        return None
    worst, count, failed, first_error = 0.0, 0, 0, None
    for batch in batches:
        count += 1
        try:
            worst = max(worst, prompts_off_difference(tuned, base, batch))
        except Exception as err:  # noqa: BLE001  (counted and reported)
            failed += 1
            first_error = first_error or f'{type(err).__name__}: {err}'
    return dict(max_diff=worst, batches=count, failed=failed,
                first_error=first_error)


def loss_flatness(losses: Sequence[float]) -> Optional[float]:
    """(mean of the last tenth - mean of the tenth before) / the latter."""
    n = len(losses) // 10
    if n < 1:
        return None
    last = sum(losses[-n:]) / n
    before = sum(losses[-2 * n:-n]) / n
    return (last - before) / abs(before) if before else None
