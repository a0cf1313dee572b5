"""A grid of experiments (configs x seeds) and one comparison table.

Each config is one method on one detector and task (its ``experiment`` dict
labels the row). For every config and seed a grid task trains with
``tools/train.py`` and evaluates the last checkpoint with ``tools/test.py``
(child processes, so ``--gpus N`` can run ``torchrun``); configs with
``evaluate_only = True`` (zero-shot) are only evaluated, once. Every run
lives in ``WORK_DIR/<config name>/seed<N>`` (``eval`` for zero-shot); a run
with ``metrics.json`` is finished and skipped, one that stopped half-way is
resumed from its last checkpoint (``--resume``).

Written to WORK_DIR: ``comparison.md`` and ``comparison.csv`` (mean ± std
over seeds of AP and AP50, trainable parameters and %, median train step
time, peak training memory, checkpoint size), ``runs.csv`` (one row per run)
and ``ap_vs_trainable_params.png``.
"""
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from ..engine.config import load_config
from ..evaluation.plots import plot_ap_vs_trainable
from ..evaluation.statistics import format_mean_std, pick_metrics
from ..utils.io import atomic_write_text, read_json
from ..utils.paths import REPO_ROOT
from .grid import GridTask, function_name, progress, terminal_fds
from .results import (
    METRICS,
    aggregate_groups,
    ap_points,
    csv_text,
    markdown_table,
)

TOOLS = osp.join(REPO_ROOT, 'tools')
DONE = 'train_done'
COST = 'train_cost.json'
#: the metrics of ``runs.csv`` that the tables give as mean ± std
AGGREGATED = ('AP', 'AP50', 'step_time_s', 'peak_memory_mib',
              'checkpoint_mb', 'trainable', 'percent')


def run_dir(work_dir: str, config: str, seed: Optional[int]) -> str:
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, name, 'eval' if seed is None else f'seed{seed}')


def make_tasks(configs: Sequence[str], seeds: Sequence[int], work_dir: str,
               cfg_options: Sequence[str] = (), gpus: int = 1
               ) -> List[GridTask]:
    """One task per (config, seed); zero-shot configs get one task."""
    tasks = []
    for config in configs:
        cfg = load_config(config)
        # Benchmark configs pick their few-shot split by ``seed``: the grid's
        # seed then selects split and training.
        split_seed = cfg.get('benchmark') is not None and 'seed' in cfg
        name = osp.splitext(osp.basename(config))[0]
        for seed in ([None] if cfg.get('evaluate_only') else seeds):
            options = [] if seed is None else (
                [f'randomness.seed={seed}'] +
                ([f'seed={seed}'] if split_seed else []))
            directory = run_dir(work_dir, config, seed)
            tasks.append(GridTask(
                name=name + ('' if seed is None else f' seed {seed}'),
                work_dir=directory,
                function=function_name(train_and_evaluate),
                args=dict(config=config, seed=seed,
                          options=options + list(cfg_options), gpus=gpus,
                          experiment=dict(cfg.get('experiment') or {})),
                result_file=osp.join(directory, METRICS)))
    return tasks


def last_checkpoint(directory: str) -> Optional[str]:
    pointer = osp.join(directory, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        checkpoint = f.read().strip()
    return checkpoint if osp.isfile(checkpoint) else None


def _run(command: List[str], log_file: str) -> None:
    with open(log_file, 'a') as log:
        log.write('$ ' + ' '.join(command) + '\n')
        log.flush()
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              pass_fds=terminal_fds())
    if proc.returncode != 0:
        raise RuntimeError(f'exit code {proc.returncode}; see {log_file}')


def train_and_evaluate(task: GridTask) -> Dict:
    """Grid task: train (or resume) unless trained, then evaluate; returns
    the evaluation metrics."""
    a, directory = task.args, task.work_dir
    log_file = osp.join(directory, 'compare.log')
    if a['seed'] is not None and not osp.isfile(osp.join(directory, DONE)):
        command = [osp.join(TOOLS, 'train.py'), a['config'], '--work-dir',
                   directory]
        if last_checkpoint(directory):
            progress(f'[resume] {task.name} from '
                     f'{last_checkpoint(directory)}')
            command.append('--resume')
        else:
            progress(f'[train] {task.name}')
        command += ['--cfg-options'] + a['options']
        if a['gpus'] > 1:
            command = [sys.executable, '-m', 'torch.distributed.run',
                       f'--nproc_per_node={a["gpus"]}'] + command + [
                           '--launcher', 'pytorch']
        else:
            command = [sys.executable] + command
        _run(command, log_file)
        atomic_write_text(osp.join(directory, DONE),
                          last_checkpoint(directory) or '')
    progress(f'[test] {task.name}')
    command = [sys.executable, osp.join(TOOLS, 'test.py'), a['config']]
    if a['seed'] is not None:
        checkpoint = last_checkpoint(directory)
        if checkpoint is None:
            raise RuntimeError(f'no checkpoint in {directory}')
        command.append(checkpoint)
    metrics_out = osp.join(directory, 'test', METRICS)
    command += ['--work-dir', osp.join(directory, 'test'), '--metrics-out',
                metrics_out]
    if a['options']:
        command += ['--cfg-options'] + a['options']
    _run(command, log_file)
    return read_json(metrics_out)


def collect(task: GridTask, metrics: Dict) -> Dict:
    """One row of ``runs.csv`` from a finished task."""
    cost = read_json(osp.join(task.work_dir, COST), {})
    checkpoint = last_checkpoint(task.work_dir)
    experiment, seed = task.args['experiment'], task.args['seed']
    name = osp.splitext(osp.basename(task.args['config']))[0]
    return dict(
        config=name,
        seed='' if seed is None else seed,
        method=experiment.get('method', name),
        detector=experiment.get('detector', ''),
        task=experiment.get('task', ''),
        **pick_metrics(metrics),
        trainable=cost.get('trainable', 0),
        total=cost.get('total'),
        percent=cost.get('percent', 0.0),
        step_time_s=cost.get('step_time_s'),
        peak_memory_mib=(cost['peak_memory_bytes'] / 2**20
                         if cost.get('peak_memory_bytes') else None),
        checkpoint_mb=(osp.getsize(checkpoint) / 1e6 if checkpoint else None),
        device=cost.get('device', ''))


def aggregate(rows: List[Dict]) -> List[Dict]:
    """Mean ± std over the seeds of each config."""
    return aggregate_groups(rows, by=('config', ),
                            labels=('method', 'detector', 'task'),
                            keys=AGGREGATED)


def write_tables(table: List[Dict], rows: List[Dict], out_dir: str) -> str:
    """``comparison.md``, ``comparison.csv``, ``runs.csv``, the plot;
    returns the markdown."""
    columns = ['method', 'detector', 'task', 'AP', 'AP50',
               'trainable params', 'trainable %', 'step time (s)',
               'peak memory (MiB)', 'checkpoint (MB)', 'runs']
    lines = markdown_table(columns, ([
        e['method'], e['detector'], e['task'],
        format_mean_std(e['AP'], e['AP_std']),
        format_mean_std(e['AP50'], e['AP50_std']),
        f"{int(e['trainable'] or 0):,}",
        format_mean_std(e['percent'], None, 4),
        format_mean_std(e['step_time_s'], e['step_time_s_std'], 2),
        format_mean_std(e['peak_memory_mib'], None, 0),
        format_mean_std(e['checkpoint_mb'], None, 2),
        str(e['runs'])
    ] for e in table))
    markdown = '\n'.join(lines) + '\n'
    atomic_write_text(osp.join(out_dir, 'comparison.md'), markdown)
    atomic_write_text(osp.join(out_dir, 'comparison.csv'), csv_text(table))
    atomic_write_text(osp.join(out_dir, 'runs.csv'), csv_text(rows))
    points = ap_points(table, lambda e: f"{e['detector']}, {e['task']}")
    plot_ap_vs_trainable({'AP against trainable parameters': points},
                         osp.join(out_dir, 'ap_vs_trainable_params.png'),
                         ylabel='AP (mean ± std over seeds)')
    return markdown


def report(tasks: List[GridTask], results: Dict[str, Dict],
           out_dir: str) -> Optional[str]:
    """Tables and plot of the finished tasks (None when none finished)."""
    rows = [collect(t, results[t.name]) for t in tasks if t.name in results]
    if not rows:
        return None
    os.makedirs(out_dir, exist_ok=True)
    return write_tables(aggregate(rows), rows, out_dir)
