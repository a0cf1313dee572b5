"""``FiniteLossHook``: stop at the first non-finite loss, before its backward
pass and before saving it."""
import math
from typing import Dict, List

import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


class NonFiniteLossError(FloatingPointError):
    pass


def non_finite_losses(losses: Dict) -> Dict[str, float]:
    """The NaN / infinite entries of a losses dict, read as mmengine's
    ``parse_losses`` reads them (a tensor's mean, a list's sum of means; the
    total is ``loss`` when the dict has none)."""
    values = {}
    for name, value in (losses or {}).items():
        if 'loss' not in name:
            continue
        if isinstance(value, torch.Tensor):
            values[name] = float(value.detach().float().mean())
        elif isinstance(value, (list, tuple)) and value and all(
                isinstance(v, torch.Tensor) for v in value):
            values[name] = float(sum(v.detach().float().mean()
                                     for v in value))
        elif isinstance(value, (int, float)):
            values[name] = float(value)
    if values and 'loss' not in values:
        values = dict(loss=sum(values.values()), **values)
    return {k: v for k, v in values.items() if not math.isfinite(v)}


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop at the first iteration whose loss (or a trainable parameter) is
    NaN or infinite: the losses are checked as the model's forward returns
    them, before the backward pass (a backward through NaN offsets makes
    mmcv's CPU deformable convolution, in GLIP's DyHead, write out of bounds
    and kill the process), and the parameters after the update, before that
    iteration's checkpoint is written. The detection head's predictions are
    checked for NaN and +inf as well (-inf masks padded text positions), as
    the head returns them in training: activations can
    overflow while every parameter is finite, and the losses are never
    reached then (a Hungarian assigner refuses a non-finite cost matrix with
    a bare ``ValueError``).

    mmengine's ``CheckInvalidLossHook`` looks only every ``interval``
    iterations, after the backward pass, and lets the checkpoint hook save
    the broken state first; this hook checks every iteration, with a higher
    priority than the checkpoint hook. All ranks agree on the verdict, so a
    distributed run stops on every rank at once.
    """
    priority = 'VERY_HIGH'

    def __init__(self):
        self._runner = None
        self._handles = []

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(
            runner.model) else runner.model

    def before_train(self, runner) -> None:
        # A forward hook on this model instance (the runner's model, not its
        # class) sees the losses before mmengine's train_step backpropagates.
        self._runner = runner
        model = self._model(runner)
        self._handles = [model.register_forward_hook(self._check_forward,
                                                     with_kwargs=True)]
        head = getattr(model, 'bbox_head', None)
        if isinstance(head, torch.nn.Module):
            self._handles.append(head.register_forward_hook(self._check_head))

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._runner = [], None

    def _check_forward(self, module, args, kwargs, output) -> None:
        if kwargs.get('mode') == 'loss' and isinstance(output, dict) and \
                self._runner is not None:
            self._stop_if(self._runner, non_finite_losses(output), [],
                          'before its backward pass')

    def _check_head(self, module, args, output) -> None:
        if not module.training or self._runner is None:
            return
        tensors, todo = [], [output]
        while todo:
            item = todo.pop()
            if isinstance(item, torch.Tensor):
                tensors.append(item)
            elif isinstance(item, (list, tuple)):
                todo += item
        # -inf is how heads mask what may not match (Grounding DINO's
        # padded text positions); NaN and +inf are overflow.
        bad = sum(int((torch.isnan(t) | torch.isposinf(t)).sum())
                  for t in (t.detach() for t in tensors)
                  if t.is_floating_point())
        self._stop_if(self._runner,
                      {'bbox_head predictions': f'{bad} NaN or +inf values'}
                      if bad else {}, [], 'before its loss')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        params = [n for n, p in self._model(runner).named_parameters()
                  if p.requires_grad and not torch.isfinite(p).all()]
        self._stop_if(runner, non_finite_losses(outputs), params,
                      'before saving this iteration')

    @staticmethod
    def _stop_if(runner, bad: Dict[str, float], params: List[str],
                 when: str) -> None:
        flag = torch.tensor(float(bool(bad or params)))
        all_reduce(flag, op='max')
        if not flag.item():
            return
        iteration = runner.iter + 1
        last = runner.message_hub.get_info('last_ckpt')
        found = ', '.join(f'{k}={v}' for k, v in bad.items()) or (
            'a finite loss on this rank, but another rank\'s was not'
            if not params else 'the loss was finite')
        if params:
            found += f'; non-finite trainable parameters: {params[:5]}'
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {iteration} ({found}). Training '
            f'stopped {when}; the last good checkpoint '
            f'is {last or "none (no checkpoint was saved yet)"}'
            + (f' (continue with --resume {last})' if last else '') +
            '. Usual causes: a learning rate too high, fp16 overflow '
            '(use --amp for dynamic loss scaling), broken boxes (run '
            'tools/check_annotations.py).')
