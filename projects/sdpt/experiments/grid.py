"""One runner for grids of runs: the method comparison and the transfer
benchmark both hand it a list of :class:`GridTask` and get their results.

    results, failures = run_grid(tasks, workers=2, log_file='grid.log')

- A task whose ``result_file`` exists is finished: its result is read, it is
  not run again (so the same command completes a broken grid). A task with a
  ``recheck`` (a decision drawn from the results of the tasks in its
  ``after``, e.g. which learning rate they select) is asked, once those have
  finished, whether its cached result still holds; one that does not is
  deleted and the task runs again.
- Tasks run in a pool of ``workers`` spawned processes, ``threads`` torch
  threads each (default: the machine's cores split between them). A task
  runs only once the tasks named in its ``after`` have finished; when one of
  them failed it fails too, without running.
- The workers' own output (mmengine, pycocotools, child processes) goes to
  ``log_file``; the terminal gets what :func:`progress` prints (the tasks'
  progress, e.g. ``ProgressHook``'s iteration lines) and one line per
  finished task with its AP, the time it took and the time left.
- A task that raises writes its traceback to ``<work_dir>/error.log``; the
  others go on, and it is listed in the failures. A worker process that dies
  (a crash in native code, or killed for memory) takes the pool down: the
  tasks that were running run again, each alone, and the one that dies
  alone is listed in the failures.
- A worker runs many tasks: what mmengine keeps by name for each Runner a
  task built (its logger with the run's log file open, message hub,
  visualizer, default scope) is released when the task ends: the
  worker's open files do not grow with the number of runs, and each run
  logs in its own folder.

A task's ``function`` is ``'package.module:function'``, called in the worker
as ``function(task)``; it returns a JSON-able dict (``AP`` / ``AP50`` keys
are shown), which the runner writes atomically to ``result_file``.
"""
import contextlib
import importlib
import logging
import multiprocessing
import os
import os.path as osp
import sys
import time
import traceback
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.utils import register_all_modules
from mmengine.utils import ManagerMixin

from ..engine.hooks.progress_hook import PROGRESS_FD_ENV, format_duration
from ..evaluation.statistics import format_mean_std
from ..utils.io import atomic_write_json, read_json

RESULT_FILE = 'result.json'


@dataclass
class GridTask:
    """One run of a grid (picklable: it travels to a worker process)."""
    name: str
    work_dir: str
    function: str
    args: Dict = field(default_factory=dict)
    after: Tuple[str, ...] = ()
    result_file: Optional[str] = None
    #: ``'package.module:function'``, called as ``function(task, cached)``:
    #: whether the cached result still holds
    recheck: Optional[str] = None

    def __post_init__(self):
        if self.result_file is None:
            self.result_file = osp.join(self.work_dir, RESULT_FILE)

    def cached_result(self) -> Optional[Dict]:
        return read_json(self.result_file)

    def holds(self, cached: Dict) -> bool:
        """Whether ``cached`` (this task's result) still holds: always,
        without a ``recheck``."""
        return not self.recheck or bool(
            resolve_function(self.recheck)(self, cached))


def function_name(function: Callable) -> str:
    """``'package.module:function'``: how a task names ``function`` (a
    module-level function) for its worker."""
    return f'{function.__module__}:{function.__qualname__}'


def resolve_function(name: str) -> Callable:
    """The function a task names (``'package.module:function'``)."""
    module, _, attr = name.partition(':')
    return getattr(importlib.import_module(module), attr)


def progress(message: str) -> None:
    """Print ``message`` on the grid's terminal (stdout outside a grid)."""
    fd = os.environ.get(PROGRESS_FD_ENV)
    if fd:
        try:
            os.write(int(fd), (message + '\n').encode())
            return
        except (OSError, ValueError):
            pass
    print(message, flush=True)


def terminal_fds() -> Tuple[int, ...]:
    """File descriptors a task's child process must keep (``pass_fds``) for
    its progress to reach the terminal."""
    fd = os.environ.get(PROGRESS_FD_ENV)
    return (int(fd), ) if fd and fd.isdigit() else ()


def _init_worker(threads: int, log_file: str) -> None:
    # Keep the terminal for progress lines, then send everything else
    # (including child processes' output) to the log.
    terminal = os.dup(1)
    os.set_inheritable(terminal, True)
    os.environ[PROGRESS_FD_ENV] = str(terminal)
    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, 'w', buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, 'w', buffering=1, closefd=False)
    torch.set_num_threads(threads)
    warnings.filterwarnings('ignore')
    # The project's modules are registered already: this module is part of
    # the package, whose import registers them.
    register_all_modules()


def _managed_classes():
    """Every class whose instances mmengine keeps by name (``MMLogger``,
    ``MessageHub``, each visualizer class, ``DefaultScope``, ...)."""
    found, todo = [], [ManagerMixin]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if '_instance_dict' in vars(cls):
            found.append(cls)
    return found


@contextlib.contextmanager
def released_managed_instances():
    """Drop, on exit, every instance mmengine's managers created inside:
    loggers closing their handlers (a Runner's logger keeps its log file
    open), visualizers closing their backends. What existed before stays,
    and is the current instance again."""
    before = {cls: set(cls._instance_dict) for cls in _managed_classes()}
    try:
        yield
    finally:
        for cls in _managed_classes():
            kept = before.get(cls, set())
            for name in [n for n in cls._instance_dict if n not in kept]:
                instance = cls._instance_dict.pop(name)
                if isinstance(instance, logging.Logger):
                    for handler in list(instance.handlers):
                        handler.close()
                        instance.removeHandler(handler)
                elif callable(getattr(instance, 'close', None)):
                    instance.close()


def run_task(task: GridTask) -> Dict:
    """Run one task in this process; write and return its result, or raise
    after writing ``error.log``. What mmengine kept for the task's Runners
    is released after it (:func:`released_managed_instances`)."""
    os.makedirs(task.work_dir, exist_ok=True)
    start = time.time()
    try:
        with released_managed_instances():
            result = dict(resolve_function(task.function)(task))
    except BaseException:
        with open(osp.join(task.work_dir, 'error.log'), 'w') as f:
            f.write(traceback.format_exc())
        raise
    result.setdefault('wall_s', round(time.time() - start, 1))
    atomic_write_json(result, task.result_file)
    return result


def _summary(result: Dict) -> str:
    parts = [f'{key.replace("_", " ")} {format_mean_std(result[key])}'
             for key in ('AP', 'AP50', 'dev_AP')
             if result.get(key) is not None]
    return ' '.join(parts) or 'done'


def run_grid(tasks: Sequence[GridTask], workers: int = 1,
             log_file: Optional[str] = None, threads: Optional[int] = None
             ) -> Tuple[Dict[str, Dict], List[Tuple[GridTask, str]]]:
    """Run every unfinished task; return ({name: result}, [(task, error)])."""
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError('grid task names must be unique')
    results, failures, pending = {}, [], []
    for task in tasks:
        cached = task.cached_result()
        if cached is not None and not task.recheck:
            results[task.name] = cached
            progress(f'[cached] {task.name}: {_summary(cached)}')
        else:
            pending.append(task)
    _take_cached(pending, results)
    if not pending:
        return results, failures
    workers = max(1, min(workers, len(pending)))
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    log_file = osp.abspath(log_file or 'grid.log')
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    failed, suspects = set(), set()
    total, finished, busy_s = len(pending), 0, 0.0
    start = time.time()
    sys.stdout.flush()

    def new_pool():
        return ProcessPoolExecutor(
            workers, mp_context=_spawn_context(), initializer=_init_worker,
            initargs=(threads, log_file))

    pool, running = new_pool(), {}
    try:
        while pending or running:
            _take_cached(pending, results)
            for task in list(pending):
                if any(d in failed for d in task.after):
                    pending.remove(task)
                    failed.add(task.name)
                    failures.append((task, 'a task it needs failed: ' +
                                     ', '.join(task.after)))
                    progress(f'FAILED {task.name}: {failures[-1][1]}')
                elif all(d in results for d in task.after) and \
                        len(running) < workers and not (
                            suspects & {t.name for t, _ in
                                        running.values()}) and (
                            task.name not in suspects or not running):
                    pending.remove(task)
                    running[pool.submit(run_task, task)] = (task,
                                                            time.time())
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                task, began = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    # A worker died (a crash in native code, or killed for
                    # memory) and took the pool down with every task on it.
                    # Each of those runs again alone: the one that dies
                    # alone is the cause.
                    broken = True
                    if task.name not in suspects:
                        suspects.add(task.name)
                        pending.insert(0, task)
                        progress(f'[retry] {task.name}: its worker process '
                                 f'died; running it again alone')
                        continue
                    result = None
                    err = RuntimeError(
                        'its worker process died (a crash in native code, '
                        'or killed for memory)')
                    # it may have died before making its folder
                    os.makedirs(task.work_dir, exist_ok=True)
                    with open(osp.join(task.work_dir, 'error.log'),
                              'w') as f:
                        f.write(f'{err}: it ran alone, so it is the cause; '
                                f'the workers\' output is in {log_file}\n')
                except Exception as error:  # the task's error.log has it
                    result, err = None, error
                finished += 1
                busy_s += time.time() - began
                left = busy_s / finished * (total - finished) / workers
                status = (f'[{finished}/{total}, '
                          f'{format_duration(time.time() - start)} elapsed, '
                          f'~{format_duration(left)} left]')
                if result is not None:
                    results[task.name] = result
                    progress(f'{status} {task.name}: {_summary(result)}')
                else:
                    failed.add(task.name)
                    message = (f'{type(err).__name__}: {err} (see '
                               f'{osp.join(task.work_dir, "error.log")})')
                    failures.append((task, message))
                    progress(f'{status} FAILED {task.name}: {message}')
            if broken:
                for future, (task, _) in running.items():
                    if task.name not in suspects:
                        suspects.add(task.name)
                        pending.insert(0, task)
                running = {}
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
            total = finished + len(pending) + len(running)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results, failures


def _take_cached(pending: List[GridTask], results: Dict[str, Dict]) -> None:
    """Move the rechecked tasks whose ``after`` have finished from
    ``pending`` to ``results`` when their cached result holds; delete the
    cached result of those where it does not (they run again)."""
    changed = True
    while changed:
        changed = False
        for task in list(pending):
            if not task.recheck or not all(d in results
                                           for d in task.after):
                continue
            cached = task.cached_result()
            if cached is None:
                continue
            if task.holds(cached):
                pending.remove(task)
                results[task.name] = cached
                progress(f'[cached] {task.name}: {_summary(cached)}')
                changed = True
            else:
                os.remove(task.result_file)
                progress(f'[stale] {task.name}: its inputs now decide '
                         f'otherwise; running it again')


def _spawn_context():
    return multiprocessing.get_context('spawn')
