"""``ProgressHook``: one line of progress on the terminal during long runs.

Grids of runs (``experiments/grid.py``) send each run's own output (mmengine
logs, pycocotools) to a log file; this hook still tells the terminal how far
the run is: iterations done, the latest loss, speed and time left, at most
every ``interval_s`` seconds and at the end. It writes to the file descriptor
named by the environment variable ``SDPT_PROGRESS_FD`` (the grid's terminal,
inherited by its workers and their child processes), else to stdout.
"""
import os
import sys
import time

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

PROGRESS_FD_ENV = 'SDPT_PROGRESS_FD'


def format_duration(seconds: float) -> str:
    """``'1h02m'``, ``'4m05s'``, ``'12s'``."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f'{hours}h{minutes:02d}m'
    return f'{minutes}m{secs:02d}s' if minutes else f'{secs}s'


def progress_stream():
    """The terminal of the grid (``SDPT_PROGRESS_FD``), else stdout."""
    fd = os.environ.get(PROGRESS_FD_ENV)
    if fd:
        try:
            return os.fdopen(os.dup(int(fd)), 'w', buffering=1)
        except (OSError, ValueError):
            pass
    return sys.stdout


@HOOKS.register_module()
class ProgressHook(Hook):
    """Print ``[label] iter i/N  loss x  it/s  eta`` to the terminal.

    Args:
        label (str): what the line names (e.g. the run).
        interval_s (float): seconds between two lines (the last iteration is
            always printed).
    """
    priority = 'VERY_LOW'

    def __init__(self, label: str = 'train', interval_s: float = 20.0):
        self.label = label
        self.interval_s = interval_s
        self._stream = None
        self._start = None
        self._last = 0.0

    def before_train(self, runner) -> None:
        self._stream = progress_stream()
        self._start = self._last = time.monotonic()
        self._start_iter = runner.iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        now = time.monotonic()
        done, total = runner.iter + 1, runner.max_iters
        if now - self._last < self.interval_s and done < total:
            return
        self._last = now
        rate = (done - self._start_iter) / max(now - self._start, 1e-9)
        loss = (outputs or {}).get('loss')
        loss = '' if loss is None else f'  loss {float(loss):.4f}'
        eta = format_duration((total - done) / rate) if rate else '?'
        self._stream.write(f'  [{self.label}] iter {done}/{total}{loss}  '
                           f'{rate:.2f} it/s  eta {eta}\n')
        self._stream.flush()
