"""``WeightAveragingHook``: train, then keep an exponential moving average of
the trainable parameters in their place.

    custom_hooks = [dict(type='WeightAveragingHook', decay=0.98)]

After every training iteration from ``begin_iter`` on, the average is
updated (``torch.optim.swa_utils.get_ema_multi_avg_fn``); after the last
one it is written into the trainable parameters, before the last
checkpoint is saved (this hook runs before mmengine's ``CheckpointHook``),
so the saved, evaluated and served model is the average. Only what trains
is averaged: for a prompt method a few thousand numbers, not the detector.
A checkpoint saved before the end carries the average (``weight_average``),
and resuming from it goes on with it.

Not mmengine's ``EMAHook``: that one averages a deep copy of the whole model
and swaps it in only around the validation and test loops; here the average
stays, so a prompt checkpoint, ``tools/test.py``, mmdet's ``DetInferencer``
and the transfer suite's own evaluations all see the same model.
"""
from typing import List, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.optim.swa_utils import get_ema_multi_avg_fn

#: the checkpoint key of the average while training goes on
CHECKPOINT_KEY = 'weight_average'


def _trainable(runner) -> List[torch.nn.Parameter]:
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model
    return [p for p in model.parameters() if p.requires_grad]


@HOOKS.register_module()
class WeightAveragingHook(Hook):
    """Exponential moving average of the trainable parameters (``decay``
    per iteration, from iteration ``begin_iter``), written into them after
    the last iteration."""
    # before CheckpointHook (VERY_LOW): the last checkpoint holds the average
    priority = 'NORMAL'

    def __init__(self, decay: float = 0.98, begin_iter: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f'WeightAveragingHook: decay={decay}: expected '
                             f'0 <= decay < 1')
        if begin_iter < 0:
            raise ValueError(f'WeightAveragingHook: begin_iter={begin_iter}:'
                             f' expected >= 0')
        self.decay = decay
        self.begin_iter = begin_iter
        self._update = get_ema_multi_avg_fn(decay)
        self.average: Optional[List[torch.Tensor]] = None
        self.updates = 0

    def before_train(self, runner) -> None:
        params = _trainable(runner)
        if self.average is not None and (
                len(self.average) != len(params) or
                any(a.shape != p.shape for a, p in zip(self.average, params))):
            raise RuntimeError(
                'WeightAveragingHook: the checkpoint resumed from holds an '
                'average of other parameters than the ones that train now')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if runner.iter < self.begin_iter:
            return
        params = _trainable(runner)
        with torch.no_grad():
            current = [p.detach() for p in params]
            if self.average is None:
                self.average = [p.clone() for p in current]
            else:
                self._update(self.average, current, self.updates)
            self.updates += 1
            if self.is_last_train_iter(runner):
                for param, average in zip(params, self.average):
                    param.copy_(average)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # at the end the average is in the parameters already
        if self.average is not None and not self.is_last_train_iter(runner):
            checkpoint[CHECKPOINT_KEY] = dict(
                average=[a.clone() for a in self.average],
                updates=self.updates)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is not None:
            self.average = [a.clone() for a in state['average']]
            self.updates = state['updates']
