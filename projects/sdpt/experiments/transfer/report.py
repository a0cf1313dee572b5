"""The report of the transfer suite: which runs are finished and selected,
the tables (``transfer.md``, ``transfer.csv``), SDPT's paired comparisons
(``comparisons.json``, for the tables of the documentation) and the plots
(``ap_vs_trainable_<shift>.png``).

Test AP is given as the mean over the reported seeds with the half-width of
its 95 % confidence interval (Student's t); SDPT is compared with every
other method of a table by the paired difference on the same seeds, and a
difference is called higher or lower only when its interval excludes zero.
"""
import os.path as osp
import statistics
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

from ...datasets.synthetic.corpus import SHIFTS
from ...evaluation.plots import plot_ap_vs_trainable
from ...evaluation.statistics import (
    compare_verdict,
    mean_ci,
    paired_difference,
)
from ...utils.io import atomic_write_json, atomic_write_text
from ..grid import GridTask
from ..results import (
    aggregate_groups,
    ap_points,
    csv_text,
    markdown_table,
    mean_std_cell,
)
from .configs import suite_methods
from .plan import is_pretrain
from .protocol import FLAT_DEV_AP, REFERENCE_METHOD, is_flat, select_lr

#: the columns of ``transfer.csv`` (one row per run)
CSV_FIELDS = [
    'detector', 'shift', 'method', 'key', 'shots', 'seed', 'lr', 'selected',
    'edge', 'dev_AP', 'AP', 'AP50', 'source_AP', 'no_fusion_AP', 'oracle_AP',
    'feature_change_image', 'feature_change_text', 'prompts_off_max_diff',
    'prompts_off_batches', 'prompts_off_failed',
    'grad_norm_first_step', 'loss_first', 'loss_last', 'loss_flatness',
    'trainable', 'total', 'iters', 'step_time_s', 'wall_s', 'diverged',
    'schedule', 'numerics', 'role', 'weight_decay'
]


def finished_rows(tasks: Sequence[GridTask]) -> Dict:
    """The results of the suite's cells whose every run has finished, for a
    report while (or without) running the rest.

    A cell is one zero-shot evaluation, or one (detector, shift, method, k)
    with its learning-rate runs and seeds: a cell with runs still to do is
    left out whole, so that no table mixes a finished cell with half of one.
    Returns ``dict(rows=..., cells=n_finished, unfinished=n_cells_left_out,
    runs_left=n_runs_to_do, runs_left_per_detector={det: n},
    run_s_per_detector={det: [(CPU model, wall time) of each finished
    run]})``.
    """
    cells, run_s = {}, {}
    for task in tasks:
        if is_pretrain(task):
            continue
        a = task.args
        key = (a['det'], a['shift'], a.get('method', 'zero_shot'),
               a.get('shots') if 'method' in a else None)
        result = task.cached_result()
        if result is not None and not task.holds(result):
            result = None  # the selection rules now want another run
        cells.setdefault(key, []).append(result)
        if result and result.get('iters') and result.get('wall_s'):
            run_s.setdefault(a['det'], []).append(
                (run_cpu(result), result['wall_s']))
    rows, unfinished, left = [], 0, {}
    for (det, *_), results in cells.items():
        missing = sum(r is None for r in results)
        if missing:
            unfinished += 1
            left[det] = left.get(det, 0) + missing
        else:
            rows += [r for r in results if not r.get('skipped')]
    return dict(rows=rows, cells=len(cells) - unfinished,
                unfinished=unfinished, runs_left=sum(left.values()),
                runs_left_per_detector=left, run_s_per_detector=run_s)


def time_left(report: Dict, workers: int,
              cpu: Optional[str] = None) -> Optional[float]:
    """Seconds of wall time the runs left by :func:`finished_rows` take at
    most (some turn out to be decisions that train nothing), at the median
    run time of each detector's finished runs (the median, since a run
    paused on the way records its pause): those made on ``cpu`` where
    there are some, else all; None while a detector with runs to do has
    none finished."""
    seconds = 0.0
    for det, n in report['runs_left_per_detector'].items():
        runs = report['run_s_per_detector'].get(det, [])
        if not runs:
            return None
        here = [t for run_cpu_model, t in runs if run_cpu_model == cpu]
        seconds += n * statistics.median(here or [t for _, t in runs])
    return seconds / max(1, workers)


def _tuned_cells(rows: Sequence[Dict]):
    """Per tuned (detector, shift, method, k): ``(reported, selection,
    chosen)``: its reported runs, its learning-rate runs (on the selection
    seeds) and the lr selected on their mean dev AP. A cell of one fixed
    learning rate has no selection runs; its first seed stands for them.
    Skipped extensions are not runs."""
    cells = {}
    for r in rows:
        if r.get('key') != 'zero_shot' and r.get('lr') not in (None, ''):
            cells.setdefault((r['detector'], r['shift'], r['key'],
                              r['shots']), []).append(r)
    for cell in cells.values():
        selection = [r for r in cell if r.get('role') == 'selection']
        reported = [r for r in cell if r.get('role') != 'selection']
        if not selection:
            seed = sorted({r['seed'] for r in cell})[0]
            selection = [r for r in cell if r['seed'] == seed]
        recipe = cell[0].get('recipe_lr') or float(selection[0]['lr'])
        yield reported, selection, select_lr(selection, recipe)


def final_rows(rows: Sequence[Dict]) -> List[Dict]:
    """Per (detector, shift, method, k): the reported rows of the selected
    lr (every reported seed), with ``selected`` set; zero-shot rows as they
    are."""
    out = [r for r in rows if r.get('key') == 'zero_shot']
    for reported, _, chosen in _tuned_cells(rows):
        out += [dict(r, selected=True) for r in reported
                if float(r['lr']) == chosen]
    return out


def lr_grids(rows: Sequence[Dict]) -> List[Dict]:
    """Per tuned (detector, shift, method, k) with more than one learning
    rate: the ones tried on the selection seeds, how many the grid had (the
    rest came from going past its end) and the selected one."""
    out = []
    for _, first, chosen in _tuned_cells(rows):
        tried = sorted({float(r['lr']) for r in first})
        if len(tried) > 1:
            grid = [r for r in first if not r.get('edge')]
            out.append(dict(tried=tried, chosen=chosen,
                            grid=len({float(r['lr']) for r in grid}),
                            flat=is_flat(grid)))
    return out


def sort_rows(rows: List[Dict]) -> List[Dict]:
    """Detectors in the order they ran, then shifts, zoo methods (zero-shot
    first, ablations last), k, seed and lr in their own orders."""
    dets = {d: i for i, d in
            enumerate(dict.fromkeys(r['detector'] for r in rows))}
    order = {m: i for i, m in enumerate(suite_methods())}
    shifts = list(SHIFTS)
    return sorted(rows, key=lambda r: (
        dets[r['detector']], shifts.index(r['shift']) if r['shift'] in shifts
        else len(shifts), order.get(r['key'], len(order)), r['key'],
        r['shots'], str(r['seed']), str(r.get('lr'))))


def _cell(rows: Sequence[Dict], key: str = 'AP', digits: int = 3) -> str:
    return mean_std_cell([r.get(key) for r in rows], digits)


def _ap_cell(rows: Sequence[Dict]) -> str:
    return mean_ci([r.get('AP') for r in rows]).format()


def paired_comparisons(rows: Sequence[Dict]) -> List[Dict]:
    """Per (detector, shift, k) holding SDPT: SDPT's test AP minus each
    other method's on the same seeds (zero-shot: its one value), the mean
    difference, its 95 % interval and the verdict."""
    out = []
    cells = {}
    for r in rows:
        if r.get('AP') is not None:
            cells.setdefault((r['detector'], r['shift']), []).append(r)
    for (det, shift), group in cells.items():
        zero = [r['AP'] for r in group if r['key'] == 'zero_shot']
        for k in sorted({r['shots'] for r in group
                         if r['key'] == REFERENCE_METHOD}):
            mine = {r['seed']: r['AP'] for r in group
                    if r['key'] == REFERENCE_METHOD and r['shots'] == k}
            others = dict.fromkeys(r['key'] for r in group
                                   if r['key'] != REFERENCE_METHOD)
            for key in others:
                if key == 'zero_shot':
                    theirs = {seed: zero[0] for seed in mine}
                    label = 'zero-shot'
                else:
                    theirs = {r['seed']: r['AP'] for r in group
                              if r['key'] == key and r['shots'] == k}
                    label = next(r['method'] for r in group
                                 if r['key'] == key)
                if not theirs:
                    continue
                diff = paired_difference(mine, theirs)
                out.append(dict(detector=det, shift=shift, shots=k,
                                method=label, key=key, n=diff.n,
                                difference=diff.mean, half=diff.half,
                                verdict=compare_verdict(diff)))
    return out


def _difference_text(c: Dict) -> str:
    """A comparison's mean difference with its interval's half-width,
    e.g. ``'+0.014 ± 0.007'``."""
    if c['difference'] is None:
        return '–'
    return f"{c['difference']:+.3f}" + (
        f" ± {c['half']:.3f}" if c['half'] is not None else '')


def comparison_records(comparisons: Sequence[Dict]) -> List[Dict]:
    """:func:`paired_comparisons` as the records of ``comparisons.json``:
    detector, shift, k, method, seeds, ``SDPT - it`` (the mean difference
    ± its 95 % interval's half-width) and the verdict."""
    return [{'detector': c['detector'], 'shift': c['shift'],
             'k': c['shots'], 'method': c['method'], 'seeds': c['n'],
             'SDPT - it': _difference_text(c), 'verdict': c['verdict']}
            for c in comparisons]


def comparison_table(comparisons: Sequence[Dict]) -> List[str]:
    """Markdown lines of :func:`paired_comparisons` (one detector and
    shift)."""
    lines = [[f"k={c['shots']}", c['method'], str(c['n']),
              _difference_text(c), c['verdict']] for c in comparisons]
    return markdown_table(['k', 'SDPT against', 'paired seeds',
                           'SDPT − it (95 % CI)', 'verdict'], lines)


def shift_table(rows: Sequence[Dict], shots_list: Sequence[int]) -> List[str]:
    """Markdown lines: one row per method of one (detector, shift)."""
    shots_list = sorted(shots_list)
    big = max(shots_list)
    columns = ['method', 'trainable']
    for k in shots_list:
        columns += [f'AP k={k}', f'lr k={k}']
    columns += [f'source AP (k={big})',
                f'Δ fused features image / text (k={big})']
    lines = []
    for key in dict.fromkeys(r['key'] for r in rows):
        mine = [r for r in rows if r['key'] == key]
        zero = key == 'zero_shot'
        cells = []
        for k in shots_list:
            at_k = mine if zero else [r for r in mine if r['shots'] == k]
            lrs = sorted({r['lr'] for r in at_k})
            cells += [_ap_cell(at_k), '–' if zero or not lrs else
                      ', '.join(f'{float(lr):.0e}' for lr in lrs)]
        at_big = mine if zero else [r for r in mine if r['shots'] == big]
        change = ' / '.join(_cell(at_big, f'feature_change_{side}', 2)
                            for side in ('image', 'text'))
        lines.append([mine[0]['method'], f"{int(mine[0]['trainable']):,}",
                      *cells, _cell(at_big, 'source_AP'), change])
    return markdown_table(columns, lines)


def run_cpu(row: Dict) -> str:
    """The CPU model a run was made on (``'not recorded'`` for runs older
    than the record)."""
    return (row.get('platform') or {}).get('cpu') or 'not recorded'


def machines(rows: Sequence[Dict]) -> List[Dict]:
    """Per (detector, shift), the CPU models its runs were made on and how
    many runs each: pinned numerics repeat bit for bit only on one CPU
    model."""
    table = defaultdict(Counter)
    for r in rows:
        table[(r['detector'], r['shift'])][run_cpu(r)] += 1
    return [dict(detector=det, shift=shift, cpus=dict(counts))
            for (det, shift), counts in table.items()]


def _summary(rows: Sequence[Dict], chosen: Sequence[Dict]) -> List[str]:
    """The lines under the tables: the machines, the schedule check, the
    learning-rate grids and the method switched off."""
    lines = ['Machines (CPU model: runs; pinned numerics repeat bit for bit '
             'only on one model): ' + '; '.join(
                 f"{m['detector']} {m['shift']}: " + ', '.join(
                     f'{cpu} {n}' for cpu, n in sorted(m['cpus'].items()))
                 for m in machines(rows)) + '.']
    tuned = [r for r in chosen if r['key'] != 'zero_shot']
    flat = [r for r in tuned if r.get('loss_flatness') is not None]
    if flat:
        within = sum(abs(r['loss_flatness']) < 0.05 for r in flat)
        lines.append(
            f'Schedule check: in {within} of {len(flat)} reported runs the '
            f'mean loss of the last tenth of training is within 5 % of the '
            f'tenth before.')
    grids = lr_grids(rows)
    if grids:
        extended = sum(len(g['tried']) > g['grid'] for g in grids)
        at_end = sum(g['chosen'] in (min(g['tried']), max(g['tried']))
                     for g in grids)
        flat = sum(g['flat'] for g in grids)
        lines.append(
            f'Learning rates: {extended} of {len(grids)} cells went past the '
            f'end of their grid (the best dev AP sat there, or the grid was '
            f'flat: {flat} cells with every dev AP within {FLAT_DEV_AP}); '
            f'{at_end} {"is" if at_end == 1 else "are"} still selected at '
            f'an end of the learning rates they tried.')
    off = [r for r in tuned if r.get('prompts_off_max_diff') is not None]
    if off:
        failed = [r for r in off if r.get('prompts_off_failed')]
        whole = all(r.get('prompts_off_batches') is not None for r in off)
        lines.append(
            f'Method switched off: '
            f'{sum(r["prompts_off_max_diff"] == 0 for r in off)} of '
            f'{len(off)} reported runs that can switch off predict exactly '
            f'as the base on ' + ('every test batch' if whole else
                                  'the first test batch (older runs)') +
            f' (largest difference '
            f'{max(r["prompts_off_max_diff"] for r in off):.3g}); '
            f'{len(failed)} runs had batches that failed.')
    return lines


def _markdown(rows: Sequence[Dict], chosen: Sequence[Dict],
              shots_list: Sequence[int], base_meta: Dict[str, Dict],
              pending: Optional[Dict] = None) -> str:
    lines = ['AP: test AP, mean over the reported seeds ± the half-width of '
             'its 95 % confidence interval (n seeds); other columns: mean ± '
             'std.', '']
    if pending and pending.get('unfinished'):
        lines += [f"Not finished yet, so left out: {pending['unfinished']} "
                  f"cells of the suite this report was asked for, with "
                  f"{pending['runs_left']:,} runs to do.", '']
    for det_name in dict.fromkeys(r['detector'] for r in chosen):
        meta = base_meta.get(det_name) or {}
        src = (meta.get('source_val') or {}).get('AP')
        lines.append(f'### {det_name}' + (
            f' (base: {meta.get("iters")} pretraining iterations, '
            f'source-domain val AP {src:.3f})' if src is not None else ''))
        for shift in dict.fromkeys(r['shift'] for r in chosen
                                   if r['detector'] == det_name):
            group = [r for r in chosen if r['detector'] == det_name
                     and r['shift'] == shift]
            lines += ['', f'**{shift}** ({SHIFTS[shift].needs})', '']
            lines += shift_table(group, shots_list)
            oracle = [r['oracle_AP'] for r in group
                      if r.get('oracle_AP') is not None]
            if oracle:
                lines += ['', f'Text-side oracle (the base with the names it '
                          f'learnt for these objects): AP {oracle[0]:.3f}.']
            no_fusion = [r['no_fusion_AP'] for r in group
                         if r['key'] == 'zero_shot'
                         and r.get('no_fusion_AP') is not None]
            if no_fusion:
                lines += ['', f'The base with its image-text fusion '
                          f'residual removed: AP {no_fusion[0]:.3f} (a '
                          f'property of the base on this shift; a method '
                          f'acting inside that residual gets the same AP '
                          f'with it removed, by construction).']
            comparisons = paired_comparisons(group)
            if comparisons:
                lines += ['', 'SDPT against each method, paired on the '
                          'same seeds (higher / lower only where the '
                          'interval excludes zero):', '']
                lines += comparison_table(comparisons)
        lines.append('')
    return '\n'.join(lines + _summary(rows, chosen)) + '\n'


def _run_key(r: Dict):
    return (r['detector'], r['shift'], r['key'], r['shots'], str(r['seed']),
            str(r.get('lr')))


def _plot_shifts(chosen: Sequence[Dict], out_dir: str) -> None:
    """One plot per shift: test AP (mean over seeds, bars: its 95%
    interval) against the trainable parameters, one panel per detector."""
    for shift in dict.fromkeys(r['shift'] for r in chosen):
        panels = {}
        for det_name in dict.fromkeys(r['detector'] for r in chosen):
            group = [r for r in chosen if r['detector'] == det_name
                     and r['shift'] == shift]
            entries = aggregate_groups(group, by=('key', 'shots'),
                                       labels=('method', 'trainable'),
                                       keys=('AP', ))
            points = ap_points(entries, lambda e: 'zero-shot' if e[
                'shots'] == 0 else f"k={e['shots']}", error='ci')
            if points:
                panels[det_name] = points
        if panels:
            plot_ap_vs_trainable(
                panels, osp.join(out_dir, f'ap_vs_trainable_{shift}.png'),
                ylabel=f'test AP, {shift} shift (mean, 95% CI)')


def write_report(rows: List[Dict], shots_list: Sequence[int], out_dir: str,
                 base_meta: Dict[str, Dict],
                 pending: Optional[Dict] = None) -> str:
    """``transfer.md``, ``transfer.csv`` (every run), ``comparisons.json``
    (:func:`comparison_records` of every table) and one plot per shift
    (``ap_vs_trainable_<shift>.png``); returns the markdown.

    ``base_meta``: per detector name, the base's ``.json`` (its pretraining
    iterations and source-domain AP head its tables). ``pending``:
    :func:`finished_rows`' counts of the cells left out, said at the top.
    """
    chosen = sort_rows(final_rows(rows))
    markdown = _markdown(rows, chosen, shots_list, base_meta, pending)
    atomic_write_text(osp.join(out_dir, 'transfer.md'), markdown)
    reported = {_run_key(r) for r in chosen}
    atomic_write_text(osp.join(out_dir, 'transfer.csv'), csv_text(
        [dict(r, selected=_run_key(r) in reported) for r in sort_rows(rows)],
        CSV_FIELDS))
    atomic_write_json(
        dict(comparisons=comparison_records(paired_comparisons(chosen))),
        osp.join(out_dir, 'comparisons.json'))
    _plot_shifts(chosen, out_dir)
    return markdown
