"""How far a tuned result moves with the arithmetic, beside how far it moves
with the seed.

The same runs (method, shift, k, learning rate, seed) are made in several
transfer-suite results folders that differ only in their protocol's numerics
(``utils/numerics.py``: ``pinned`` and its perturbations), or in the CPU
model they were made on, and perhaps in the schedule (or its length). A
folder's runs count as one numerics mode: its protocol's, named
``'<numerics> on <CPU>'`` where they were made on another CPU model than the
first ``pinned`` folder's (another machine is one more perturbation). For
each (schedule, method) this module reports:

* per numerics mode, the test AP's mean and standard deviation over the
  seeds (the spread the tables show), with the number of seeds where the
  modes ran different seeds (their means are then over different seeds:
  only the per-seed differences below are paired);
* the spread under perturbation: per seed, the test AP under each
  perturbed mode minus the pinned one; their mean absolute value and the
  largest, over all perturbed modes and per mode.

When the perturbation spread is as large as the seed spread, a figure made
on one machine says little about another, and only more seeds (a narrower
interval of the mean) make a comparison. So the report also asks whether
the comparisons survive: per schedule and numerics mode, SDPT against each
other method by the paired difference on the seeds every mode ran
(``transfer/report.py: paired_comparisons``), and whether each mode gives
the pinned verdict.

A report's ``noise.csv`` lists every run it compared, so the report can be
rebuilt from it where the runs' records are gone
(:func:`noise_rows_from_csv`).
"""
import csv
import glob
import os.path as osp
import statistics
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

from ..evaluation.statistics import format_mean_std, mean_std
from ..utils.io import atomic_write_json, atomic_write_text, read_json
from .results import csv_text, markdown_table
from .transfer.configs import DEFAULT_WEIGHT_DECAY_RULE
from .transfer.plan import PROTOCOL_FILE
from .transfer.protocol import DEFAULT_ITERS
from .transfer.report import paired_comparisons, run_cpu

REFERENCE = 'pinned'
# the columns of a report's noise.csv: the fields of a run that the report
# reads, so that the report can be rebuilt from its CSV
CSV_FIELDS = ('schedule', 'numerics', 'detector', 'method', 'key', 'shift',
              'shots', 'lr', 'seed', 'dev_AP', 'AP', 'AP50', 'loss_first',
              'loss_last')
_FLOAT_FIELDS = ('lr', 'dev_AP', 'AP', 'AP50', 'loss_first', 'loss_last')


def noise_rows(work_dirs: Sequence[str],
               seeds: Optional[Sequence[int]] = None) -> List[Dict]:
    """The reported tuned runs of ``work_dirs`` (transfer-suite results
    folders; not their learning-rate trials; only those of ``seeds`` when
    given), each with its numerics mode (its folder's, and the CPU model
    where that is not the one the first ``pinned`` folder's runs of its
    detector, shift and k were made on) and its folder's schedule."""
    folders = []
    for work_dir in work_dirs:
        protocol = read_json(osp.join(work_dir, PROTOCOL_FILE))
        if protocol is None:
            raise ValueError(f'{work_dir}: no {PROTOCOL_FILE} (not a '
                             f'transfer-suite results folder of a recorded '
                             f'protocol)')
        runs = []
        for path in sorted(glob.glob(osp.join(work_dir, '*', '*', '*', '*',
                                               'metrics.json'))):
            row = read_json(path) or {}
            # learning-rate trials are not the runs a table reports
            if (row.get('AP') is None or row.get('key') == 'zero_shot'
                    or row.get('role') == 'selection'
                    or (seeds is not None and row.get('seed') not in seeds)):
                continue
            runs.append(row)
        folders.append((protocol, runs))
    # per (detector, shift, k), the CPU model of the first pinned folder's
    # runs; a run made on another is a mode of its own
    reference_cpu: Dict = {}
    pinned = next((runs for protocol, runs in folders
                   if protocol['numerics'] == REFERENCE), [])
    by_cell = defaultdict(Counter)
    for row in pinned:
        by_cell[_cell(row)][run_cpu(row)] += 1
    for cell, cpus in by_cell.items():
        reference_cpu[cell] = cpus.most_common(1)[0][0]
    rows = []
    for protocol, runs in folders:
        for row in runs:
            mode, cpu = protocol['numerics'], run_cpu(row)
            if reference_cpu.get(_cell(row), cpu) != cpu:
                mode = f'{mode} on {cpu}'
            rows.append(dict(row, numerics=mode,
                             schedule=schedule_label(protocol)))
    return rows


def noise_rows_from_csv(path: str,
                        seeds: Optional[Sequence[int]] = None) -> List[Dict]:
    """The runs a report's ``noise.csv`` lists (only those of ``seeds``
    when given), as :func:`noise_rows` gives them."""
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_FIELDS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(
                f'{path}: no column {", ".join(missing)} (the noise.csv of '
                f'tools/noise_report.py has the columns '
                f'{", ".join(CSV_FIELDS)})')
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                row = dict(row, shots=int(row['shots']),
                           seed=int(row['seed']),
                           **{f: float(row[f]) if row[f] else None
                              for f in _FLOAT_FIELDS})
            except (TypeError, ValueError) as err:
                raise ValueError(f'{path}, line {line}: {err}') from None
            if seeds is None or row['seed'] in seeds:
                rows.append(row)
    return rows


def _cell(row: Dict) -> tuple:
    return row.get('detector'), row.get('shift'), row.get('shots')


def schedule_label(protocol: Dict) -> str:
    """A protocol's schedule, with its length and weight-decay rule where
    they are not the suite's defaults (e.g. ``'cosine, 400 iterations'``,
    ``'cosine, recipe weight decay'``): runs that differ in them are not
    the same setting."""
    label = [protocol['schedule']]
    iters = protocol.get('iters', DEFAULT_ITERS)
    if iters != DEFAULT_ITERS:
        label.append(f'{iters} iterations')
    rule = protocol.get('weight_decay', DEFAULT_WEIGHT_DECAY_RULE)
    if rule != DEFAULT_WEIGHT_DECAY_RULE:
        label.append(f'{rule} weight decay')
    return ', '.join(label)


def _pinned_first(item) -> tuple:
    return item[0] != REFERENCE, item[0]


def _cell_of(row) -> tuple:
    """(schedule, detector, method, shift, k, lr): the runs of one setting
    under each numerics mode."""
    return (row['schedule'], row['detector'], row['method'], row['shift'],
            row['shots'], row['lr'])


def noise_table(rows: Sequence[Dict]) -> List[Dict]:
    """One record per (schedule, detector, method, shift, k, lr) run under
    two or more numerics modes: the seeds' test AP per numerics mode, and
    the differences of each perturbed mode from ``pinned`` on the same
    seeds (module docstring)."""
    cells = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        cells[_cell_of(row)][row['numerics']][row['seed']] = float(row['AP'])
    table = []
    for (schedule, detector, method, shift, shots, lr), modes in sorted(
            cells.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if len(modes) < 2:  # nothing to compare it with
            continue
        record = dict(schedule=schedule, detector=detector, method=method,
                      shift=shift, k=shots, lr=lr)
        # the pinned mode's column first, then the perturbed ones; each
        # with its number of seeds where the modes ran different seeds
        same_seeds = len({frozenset(s) for s in modes.values()}) == 1
        for mode, by_seed in sorted(modes.items(), key=_pinned_first):
            record[f'AP {mode}'] = format_mean_std(
                *mean_std(by_seed.values())[:2]) + (
                    '' if same_seeds else f' (n={len(by_seed)})')
        reference = modes.get(REFERENCE, {})
        by_mode = {mode: [ap - reference[seed]
                          for seed, ap in by_seed.items()
                          if seed in reference]
                   for mode, by_seed in sorted(modes.items())
                   if mode != REFERENCE}
        diffs = [d for mode_diffs in by_mode.values() for d in mode_diffs]
        record['seeds'] = len(reference)
        record['seed std (pinned)'] = (
            f'{statistics.stdev(reference.values()):.3f}'
            if len(reference) > 1 else '-')
        record['perturbed - pinned, mean abs'] = (
            f'{statistics.mean(abs(d) for d in diffs):.3f}' if diffs else '-')
        record['perturbed - pinned, max abs'] = (
            f'{max(abs(d) for d in diffs):.3f}' if diffs else '-')
        for mode, mode_diffs in by_mode.items():
            record[f'{mode} - pinned, max abs'] = (
                f'{max(abs(d) for d in mode_diffs):.3f}' if mode_diffs
                else '-')
        table.append(record)
    return table


def noise_summary(table: Sequence[Dict]) -> Dict:
    """``{'methods': {method: {'lr': its lr, schedule: {'seeds': mean ±
    std of the pinned runs, 'perturbed_max': largest change, 'by_mode':
    {mode: its largest change}}}}}``, for the tables of the documentation
    (a method as ``'SDPT (GLIP (tiny), k=1)'`` where the table spans
    several detectors, shifts or k)."""
    methods: Dict = {}
    # a method is named by its cell where the table spans several
    varying = [field for field in ('detector', 'shift', 'k')
               if len({record[field] for record in table}) > 1]
    for record in table:
        cell = ', '.join(f'k={record[f]}' if f == 'k' else str(record[f])
                         for f in varying)
        entry = methods.setdefault(
            f"{record['method']} ({cell})" if cell else record['method'], {})
        entry['lr'] = f"{float(record['lr']):g}"
        suffix = ' - pinned, max abs'
        entry[record['schedule']] = dict(
            seeds=record.get(f'AP {REFERENCE}', '-'),
            perturbed_max=record['perturbed' + suffix],
            by_mode={key[:-len(suffix)]: value
                     for key, value in record.items()
                     if key.endswith(suffix) and key != 'perturbed' + suffix})
    return dict(methods=methods)


def _seeds_in_every_mode(rows: Sequence[Dict]) -> Dict:
    """``{(schedule, detector, shift, k, method key): seeds}`` that every
    numerics mode of the schedule ran."""
    modes = defaultdict(set)
    seeds = defaultdict(lambda: defaultdict(set))
    for row in rows:
        modes[row['schedule']].add(row['numerics'])
        cell = (row['schedule'], row['detector'], row['shift'],
                row['shots'], row['key'])
        seeds[cell][row['numerics']].add(row['seed'])
    return {cell: set.intersection(*(by_mode.get(m, set())
                                     for m in modes[cell[0]]))
            for cell, by_mode in seeds.items()}


def verdict_table(rows: Sequence[Dict]) -> List[Dict]:
    """Per (schedule, detector, shift, k, method): SDPT's paired
    difference from the method under each numerics mode, on the seeds every
    mode ran, and whether each mode reaches the pinned verdict."""
    common = _seeds_in_every_mode(rows)
    groups = defaultdict(list)
    for row in rows:
        cell = (row['schedule'], row['detector'], row['shift'],
                row['shots'], row['key'])
        if row['seed'] in common[cell]:
            groups[(row['schedule'], row['numerics'])].append(row)
    # the pinned mode first, its columns beside each perturbed mode's
    modes = sorted({mode for _, mode in groups},
                   key=lambda mode: (mode != REFERENCE, mode))
    records: Dict = {}
    for (schedule, mode), group in sorted(groups.items()):
        for c in paired_comparisons(group):
            record = records.setdefault(
                (schedule, c['detector'], c['shift'], c['shots'], c['key']),
                dict(schedule=schedule, detector=c['detector'],
                     shift=c['shift'], k=c['shots'], method=c['method'],
                     seeds=c['n'],
                     **{f'{m} {column}': '-' for m in modes
                        for column in ('SDPT - it', 'verdict')}))
            half = '' if c['half'] is None else f" ± {c['half']:.3f}"
            record[f'{mode} SDPT - it'] = f"{c['difference']:+.3f}{half}"
            record[f'{mode} verdict'] = c['verdict']
    table = []
    # in the order of the runs' folders (the method keys), whatever order
    # the rows came in
    for _, record in sorted(records.items(),
                            key=lambda kv: tuple(map(str, kv[0]))):
        verdicts = [v for k, v in record.items()
                    if k.endswith(' verdict') and v != '-']
        pinned = record[f'{REFERENCE} verdict'] if REFERENCE in modes \
            else '-'
        record['same verdict'] = (
            '-' if pinned == '-' or len(verdicts) < 2
            else 'yes' if set(verdicts) == {pinned} else 'no')
        table.append(record)
    return table


def write_noise_report(rows: Sequence[Dict], out_dir: str) -> str:
    """``noise.md``, ``noise.json`` (:func:`noise_summary` and
    :func:`verdict_table`) and ``noise.csv`` (every run of the settings
    compared) in ``out_dir``, of ``rows`` (:func:`noise_rows` or
    :func:`noise_rows_from_csv`); returns the markdown."""
    table = noise_table(rows)
    if not table:
        raise ValueError('no run has a counterpart under another numerics '
                         'mode (the same method, shift, k, learning rate '
                         'and seed)')
    columns = list(dict.fromkeys(k for record in table for k in record))
    lines = markdown_table(
        columns, [[str(r.get(c, '-')) for c in columns] for r in table])
    markdown = '\n'.join(lines) + '\n'
    verdicts = verdict_table(rows)
    if verdicts:
        columns = list(dict.fromkeys(k for r in verdicts for k in r))
        markdown += '\nSDPT against each method, paired on the seeds every ' \
            'mode ran:\n\n' + '\n'.join(markdown_table(
                columns, [[str(r.get(c, '-')) for c in columns]
                          for r in verdicts])) + '\n'
    atomic_write_text(osp.join(out_dir, 'noise.md'), markdown)
    atomic_write_json(dict(noise_summary(table), verdicts=verdicts),
                      osp.join(out_dir, 'noise.json'))
    # the runs of the cells compared (the folders may hold others)
    modes = defaultdict(set)
    for row in rows:
        modes[_cell_of(row)].add(row['numerics'])
    runs = sorted((r for r in rows if len(modes[_cell_of(r)]) > 1),
                  key=lambda r: (r['schedule'], r['detector'],
                                       r['method'], r['shift'], r['shots'],
                                       r['numerics'], r['seed']))
    atomic_write_text(osp.join(out_dir, 'noise.csv'),
                      csv_text(runs, CSV_FIELDS))
    return markdown
