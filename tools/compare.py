"""Run a grid of experiments (configs x seeds) and write one comparison table.

    python tools/compare.py configs/demo/zoo/*_gdino_tiny_demo.py \\
        configs/demo/sdpt_gdino_tiny_demo.py --seeds 0 1 \\
        --work-dir work_dirs/compare_demo

Each config is one method on one detector and task (its ``experiment`` dict
labels the row). For every config and seed the tool trains with
``tools/train.py`` and evaluates the last checkpoint with ``tools/test.py``;
configs with ``evaluate_only = True`` (zero-shot) are only evaluated, once.
Every run lives in ``WORK_DIR/<config name>/seed<N>``; a run that finished is
skipped and one that stopped half-way is resumed (``--resume``), so running
the same command again completes a broken grid. A run that fails is reported
and the others go on.

Written to WORK_DIR: ``comparison.md`` and ``comparison.csv`` (mean ± std over
seeds of AP and AP50, trainable parameters and %, median train step time,
peak training memory, checkpoint size), ``runs.csv`` (one row per run) and
``ap_vs_trainable_params.png`` (AP against trainable parameters, log scale).

On a GPU cluster the same command runs the real configs; ``--gpus N`` trains
each run on N GPUs of this node with ``torchrun``.
"""
import argparse
import csv
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
from typing import Dict, List, Optional

from _common import REPO_ROOT, load_config, setup_environment

setup_environment()

TOOLS = osp.join(REPO_ROOT, 'tools')
DONE = 'train_done'
METRICS = 'metrics.json'
COST = 'train_cost.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='one config per method')
    parser.add_argument(
        '--seeds', nargs='+', type=int, default=[0], help='seeds per config')
    parser.add_argument(
        '--work-dir', default='work_dirs/compare', help='where runs and '
        'tables go')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[], help='key=value overrides '
        'for every run (passed to tools/train.py and tools/test.py)')
    parser.add_argument(
        '--gpus', type=int, default=1, help='GPUs per training run')
    parser.add_argument(
        '--report-only', action='store_true', help='only collect the runs '
        'already finished into the tables')
    return parser.parse_args(argv)


class Run:
    """One (config, seed) cell of the grid."""

    def __init__(self, config: str, seed: Optional[int], work_dir: str,
                 split_seed: bool = False):
        self.config = config
        self.seed = seed
        # Benchmark configs (projects/sdpt/benchmarks.py) pick their few-shot
        # split by ``seed``: the grid's seed then selects split and training.
        self.options = [] if seed is None else (
            [f'randomness.seed={seed}'] +
            ([f'seed={seed}'] if split_seed else []))
        self.name = osp.splitext(osp.basename(config))[0]
        self.dir = osp.join(work_dir, self.name,
                            'eval' if seed is None else f'seed{seed}')
        self.error = None

    @property
    def label(self):
        return self.name + ('' if self.seed is None else f' seed {self.seed}')

    def path(self, name):
        return osp.join(self.dir, name)

    def last_checkpoint(self) -> Optional[str]:
        pointer = self.path('last_checkpoint')
        if not osp.isfile(pointer):
            return None
        with open(pointer) as f:
            checkpoint = f.read().strip()
        return checkpoint if osp.isfile(checkpoint) else None


def _run(command: List[str], log_file: str) -> None:
    with open(log_file, 'a') as log:
        log.write('$ ' + ' '.join(command) + '\n')
        log.flush()
        proc = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd())
    if proc.returncode != 0:
        raise RuntimeError(f'exit code {proc.returncode}; see {log_file}')


def train(run: Run, args) -> None:
    if osp.isfile(run.path(DONE)):
        print(f'[skip] {run.label}: trained')
        return
    options = run.options + list(args.cfg_options)
    command = [osp.join(TOOLS, 'train.py'), run.config, '--work-dir', run.dir]
    if run.last_checkpoint():
        print(f'[resume] {run.label} from {run.last_checkpoint()}')
        command.append('--resume')
    else:
        print(f'[train] {run.label}')
    command += ['--cfg-options'] + options
    if args.gpus > 1:
        command = [
            sys.executable, '-m', 'torch.distributed.run',
            f'--nproc_per_node={args.gpus}'
        ] + command + ['--launcher', 'pytorch']
    else:
        command = [sys.executable] + command
    _run(command, run.path('compare.log'))
    with open(run.path(DONE), 'w') as f:
        f.write(run.last_checkpoint() or '')


def evaluate(run: Run, args) -> None:
    if osp.isfile(run.path(METRICS)):
        print(f'[skip] {run.label}: evaluated')
        return
    print(f'[test] {run.label}')
    command = [sys.executable, osp.join(TOOLS, 'test.py'), run.config]
    if run.seed is not None:
        checkpoint = run.last_checkpoint()
        if checkpoint is None:
            raise RuntimeError(f'no checkpoint in {run.dir}')
        command.append(checkpoint)
    command += [
        '--work-dir', run.path('test'), '--metrics-out',
        run.path(METRICS + '.tmp')
    ]
    if run.options or args.cfg_options:
        command += ['--cfg-options'] + run.options + list(args.cfg_options)
    _run(command, run.path('compare.log'))
    os.replace(run.path(METRICS + '.tmp'), run.path(METRICS))


def _pick(metrics: Dict, suffixes) -> Optional[float]:
    for suffix in suffixes:
        for key, value in metrics.items():
            if key.endswith(suffix):
                return float(value)
    return None


def collect(run: Run, experiment: Dict) -> Optional[Dict]:
    if not osp.isfile(run.path(METRICS)):
        return None
    with open(run.path(METRICS)) as f:
        metrics = json.load(f)
    cost = {}
    if osp.isfile(run.path(COST)):
        with open(run.path(COST)) as f:
            cost = json.load(f)
    checkpoint = run.last_checkpoint()
    return dict(
        config=run.name,
        seed='' if run.seed is None else run.seed,
        method=experiment.get('method', run.name),
        detector=experiment.get('detector', ''),
        task=experiment.get('task', ''),
        AP=_pick(metrics, ('bbox_mAP', 'bbox_AP')),
        AP50=_pick(metrics, ('bbox_mAP_50', 'bbox_AP50')),
        trainable=cost.get('trainable', 0),
        total=cost.get('total'),
        percent=cost.get('percent', 0.0),
        step_time_s=cost.get('step_time_s'),
        peak_memory_mib=(cost['peak_memory_bytes'] / 2**20
                         if cost.get('peak_memory_bytes') else None),
        checkpoint_mb=(osp.getsize(checkpoint) / 1e6 if checkpoint else None),
        device=cost.get('device', ''))


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def aggregate(rows: List[Dict]) -> List[Dict]:
    table = []
    for config in dict.fromkeys(r['config'] for r in rows):
        group = [r for r in rows if r['config'] == config]
        first = group[0]
        entry = {k: first[k] for k in ('config', 'method', 'detector', 'task')}
        entry['runs'] = len(group)
        for key in ('AP', 'AP50', 'step_time_s', 'peak_memory_mib',
                    'checkpoint_mb', 'trainable', 'percent'):
            entry[key], entry[key + '_std'] = _mean_std(
                [r[key] for r in group])
        table.append(entry)
    return table


def _fmt(mean, std=None, digits=3, runs=1):
    if mean is None:
        return '–'
    text = f'{mean:.{digits}f}'
    return text + (f' ± {std:.{digits}f}' if std is not None and runs > 1
                   else '')


def write_tables(table: List[Dict], rows: List[Dict], out_dir: str) -> str:
    header = ('| method | detector | task | AP | AP50 | trainable params | '
              'trainable % | step time (s) | peak memory (MiB) | '
              'checkpoint (MB) | runs |')
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    for e in table:
        n = e['runs']
        lines.append('| ' + ' | '.join([
            e['method'], e['detector'], e['task'],
            _fmt(e['AP'], e['AP_std'], 3, n),
            _fmt(e['AP50'], e['AP50_std'], 3, n),
            f"{int(e['trainable'] or 0):,}",
            _fmt(e['percent'], None, 4),
            _fmt(e['step_time_s'], e['step_time_s_std'], 2, n),
            _fmt(e['peak_memory_mib'], None, 0),
            _fmt(e['checkpoint_mb'], None, 2),
            str(n)
        ]) + ' |')
    markdown = '\n'.join(lines) + '\n'
    with open(osp.join(out_dir, 'comparison.md'), 'w') as f:
        f.write(markdown)
    for name, records in (('comparison.csv', table), ('runs.csv', rows)):
        with open(osp.join(out_dir, name), 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    return markdown


def plot(table: List[Dict], out_file: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = dict.fromkeys((e['detector'], e['task']) for e in table)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for i, group in enumerate(groups):
        colour = colours[i % len(colours)]
        members = [e for e in table if (e['detector'], e['task']) == group]
        for e in members:
            if e['AP'] is None:
                continue
            if not e['trainable']:  # zero-shot: no point on a log axis
                ax.axhline(e['AP'], color=colour, linestyle='--', lw=1)
                ax.annotate(f"{e['method']} ({group[0]})", (1, e['AP']),
                            xycoords=('axes fraction', 'data'),
                            ha='right', va='bottom', fontsize=7)
                continue
            ax.errorbar(e['trainable'], e['AP'], yerr=e['AP_std'] or 0,
                        fmt='o', color=colour, capsize=3)
            ax.annotate(e['method'], (e['trainable'], e['AP']),
                        textcoords='offset points', xytext=(4, 4),
                        fontsize=7)
        ax.plot([], [], 'o', color=colour, label=f'{group[0]}, {group[1]}')
    ax.set_xscale('log')
    ax.set_xlabel('trainable parameters (log scale)')
    ax.set_ylabel('AP')
    ax.set_title('AP against trainable parameters')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    runs, experiments = [], {}
    for config in args.configs:
        cfg = load_config(config)
        experiments[config] = dict(cfg.get('experiment') or {})
        seeds = [None] if cfg.get('evaluate_only') else args.seeds
        split_seed = cfg.get('benchmark') is not None and 'seed' in cfg
        runs += [
            Run(config, seed, args.work_dir, split_seed) for seed in seeds
        ]

    failed = []
    if not args.report_only:
        for run in runs:
            os.makedirs(run.dir, exist_ok=True)
            try:
                if run.seed is not None:
                    train(run, args)
                evaluate(run, args)
            except RuntimeError as e:
                run.error = str(e)
                failed.append(run)
                print(f'[failed] {run.label}: {e}')

    rows = [r for r in (collect(run, experiments[run.config]) for run in runs)
            if r is not None]
    if not rows:
        raise SystemExit('No finished run to report.')
    table = aggregate(rows)
    print(write_tables(table, rows, args.work_dir))
    plot(table, osp.join(args.work_dir, 'ap_vs_trainable_params.png'))
    print(f'Tables and plot in {args.work_dir} '
          f'({len(rows)} of {len(runs)} runs finished).')
    if failed:
        print('Failed runs (run the command again to retry them):')
        for run in failed:
            print(f'  {run.label}: {run.error}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
