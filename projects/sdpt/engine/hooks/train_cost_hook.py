"""What a training run costs, written next to its checkpoints.

``TrainCostHook`` times every training iteration (forward, backward and
optimizer step; data loading excluded), skips the first ``warmup`` ones and
writes ``train_cost.json`` to the work dir at the end of training:
median step time, peak memory, and the trainable parameter count. The
comparison tool (``tools/compare.py``) reads it.

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the process's
peak resident set size on CPU (which includes the data pipeline and the
Python runtime, so compare CPU figures between runs of one machine only).
"""
import os.path as osp
import resource
import statistics
import time

import torch
from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...methods.trainable import trainable_parameter_report
from ...utils.io import atomic_write_json

COST_FILE = 'train_cost.json'


def peak_memory_bytes(device: str) -> int:
    if device == 'cuda':
        return int(torch.cuda.max_memory_allocated())
    # ru_maxrss is in kilobytes on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@HOOKS.register_module()
class TrainCostHook(Hook):
    """Record step time and peak memory of a training run.

    Args:
        warmup (int): iterations not timed (allocator, caches, cudnn
            autotuning). Defaults to 2.
    """
    priority = 'LOWEST'

    def __init__(self, warmup: int = 2):
        self.warmup = warmup
        self.step_times = []
        self._start = None
        self._device = 'cpu'

    def before_train(self, runner) -> None:
        self.step_times = []
        self._device = 'cuda' if torch.cuda.is_available() else 'cpu'
        if self._device == 'cuda':
            torch.cuda.reset_peak_memory_stats()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._device == 'cuda':
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._device == 'cuda':
            torch.cuda.synchronize()
        self.step_times.append(time.perf_counter() - self._start)

    def after_train(self, runner) -> None:
        if not is_main_process():
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        timed = self.step_times[self.warmup:] or self.step_times
        cost = dict(
            device=self._device,
            iterations_timed=len(timed),
            step_time_s=statistics.median(timed) if timed else None,
            peak_memory_bytes=peak_memory_bytes(self._device),
            **trainable_parameter_report(model))
        atomic_write_json(cost, osp.join(runner.work_dir, COST_FILE),
                          indent=2)
        runner.logger.info(
            f'Train cost: median step {cost["step_time_s"]:.3f} s over '
            f'{len(timed)} iterations, peak memory '
            f'{cost["peak_memory_bytes"] / 2**20:.0f} MiB ({self._device})')
