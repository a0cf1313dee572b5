"""The plan of a transfer suite (:class:`TransferPlan`) and the grid tasks
that carry it out: pretraining for the bases that need it, the zero-shot
evaluations, then per (detector, k, method, shift) the learning-rate runs on
the selection seeds and the selected setting on the reported seeds."""
import glob
import math
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ...utils.io import atomic_write_json, read_json
from ..bases import (
    DEFAULT_PRETRAIN_ITERS,
    pretrain,
    pretrain_task,
    shipped_base,
)
from ..grid import GridTask, function_name
from ..results import METRICS
from .configs import DEFAULT_WEIGHT_DECAY_RULE, recipe_lr
from .protocol import (
    DEFAULT_EXTRA_SEEDS,
    DEFAULT_ITERS,
    DEFAULT_LR_EDGE_STEPS,
    DEFAULT_LR_FACTORS,
    DEFAULT_SCHEDULE,
    DEFAULT_SEEDS,
    DEFAULT_SELECTION_SEEDS,
    DEFAULT_SHOTS,
    REFERENCE_METHOD,
    TARGET_HALF_WIDTH,
    log_step,
    lr_grid,
    needs_more_seeds,
    next_edge_lr,
    select_lr,
)
from .runs import evaluate_zero_shot, tune


class CellSetting(NamedTuple):
    """What one cell of a finished suite reported: the learning rate it
    selected and the seeds it ran there (the extra seeds included)."""
    lr: float
    seeds: Tuple[int, ...]


#: ``(detector, shift, method, k)``
Cell = Tuple[str, str, str, int]


@dataclass
class TransferPlan:
    """What one transfer suite runs.

    ``bases``: ``{det: base file}``; a file that does not exist is
    pretrained first, for ``pretrain_iters[det]`` iterations. Each method
    is tried at its recipe learning rate times ``lr_factors`` on every
    seed of ``selection_seeds`` (then up to ``lr_edge_steps`` steps past
    the grid's end where the best mean dev AP sits), unless ``fixed_lrs``
    gives it one learning rate; the selected one runs on ``seeds``, the
    reported ones, and on ``extra_seeds`` too where the reported seeds'
    95% interval is wider than ``target_half_width`` (always for
    ``protocol.REFERENCE_METHOD``). ``cell_settings``
    (:func:`selected_settings`) instead runs each cell a finished suite
    reported again, at its learning rate on the seeds it ran there (e.g.
    under other numerics), the cells it lacks left out. Every run trains
    ``iters`` iterations with the learning-rate ``schedule``
    (``protocol.lr_schedule``) and the ``weight_decay`` rule
    (``configs.WEIGHT_DECAY_RULES``).

    A run trains in its folder under ``work_root`` (checkpoints, logs) and
    records its result, ``metrics.json``, in the same folder under
    ``results_root`` (default: ``work_root``): a results folder of small
    files, kept apart from the work, can be committed, and a suite continues
    from it on another machine.
    """
    detectors: Sequence[str]
    shifts: Sequence[str]
    methods: Sequence[str]
    root: str
    work_root: str
    bases: Dict[str, str]
    pretrain_iters: Dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_PRETRAIN_ITERS))
    shots: Sequence[int] = DEFAULT_SHOTS
    seeds: Sequence[int] = DEFAULT_SEEDS
    selection_seeds: Sequence[int] = DEFAULT_SELECTION_SEEDS
    extra_seeds: Sequence[int] = DEFAULT_EXTRA_SEEDS
    target_half_width: float = TARGET_HALF_WIDTH
    lr_factors: Sequence[float] = DEFAULT_LR_FACTORS
    fixed_lrs: Dict[str, float] = field(default_factory=dict)
    iters: int = DEFAULT_ITERS
    lr_edge_steps: int = DEFAULT_LR_EDGE_STEPS
    schedule: str = DEFAULT_SCHEDULE
    weight_decay: str = DEFAULT_WEIGHT_DECAY_RULE
    results_root: Optional[str] = None
    cell_settings: Optional[Dict[Cell, CellSetting]] = None

    def record_file(self, work_dir: str) -> str:
        """Where the run working in ``work_dir`` records its result."""
        return osp.join(self.results_root or self.work_root,
                        osp.relpath(work_dir, self.work_root), METRICS)

    def selects(self) -> bool:
        """Whether some tuned method selects its learning rate."""
        return self.cell_settings is None and any(
            m != 'zero_shot' and m not in self.fixed_lrs
            and len(self.lr_factors) > 1 for m in self.methods)

    def seeds_needed(self) -> List[int]:
        """The seeds with runs: the selection seeds, then the reported ones
        and those that may be added to them."""
        if self.cell_settings is not None:
            return sorted({seed for setting in self.cell_settings.values()
                           for seed in setting.seeds})
        extra = list(self.selection_seeds) if self.selects() else []
        return list(dict.fromkeys(extra + list(self.seeds) +
                                  list(self.extra_seeds)))

    def protocol(self, numerics: str) -> Dict:
        """What every run of the suite shares, for ``protocol.json``."""
        return dict(numerics=numerics, schedule=self.schedule,
                    iters=self.iters, weight_decay=self.weight_decay,
                    selection_seeds=list(self.selection_seeds)
                    if self.selects() else None)

    def learning_rates(self, det: str, shift: str, method: str,
                       shots: int) -> List[float]:
        """The learning rates ``method`` is tried at in one cell (none: the
        cell is left out)."""
        if self.cell_settings is not None:
            setting = self.cell_settings.get((det, shift, method, shots))
            return [] if setting is None else [setting.lr]
        if method in self.fixed_lrs:
            return [self.fixed_lrs[method]]
        return lr_grid(recipe_lr(det, method), self.lr_factors)

    def rerun_seeds(self, det: str, shift: str, method: str,
                    shots: int) -> Optional[Tuple[int, ...]]:
        """The seeds a cell of ``cell_settings`` ran (None: the cell follows
        the protocol's seeds)."""
        if self.cell_settings is None:
            return None
        setting = self.cell_settings.get((det, shift, method, shots))
        return None if setting is None else setting.seeds


def selected_settings(results_root: str) -> Dict[Cell, CellSetting]:
    """``{(detector, shift, method, k): CellSetting}``: the learning rate
    each cell of the suite recorded in ``results_root`` selected and the
    seeds it reported there, read from its reported runs (a cell whose
    selection has not finished has none), so that its cells can run again
    on the same seeds at those settings, e.g. under other numerics."""
    lrs: Dict[Cell, float] = {}
    seeds: Dict[Cell, List[int]] = {}
    pattern = osp.join(results_root, '*', '*', '*', 'k*_seed*_selected',
                       METRICS)
    for path in sorted(glob.glob(pattern)):
        row = read_json(path) or {}
        if row.get('lr') is None or row.get('skipped'):
            continue
        det, shift, method = path.split(osp.sep)[-5:-2]
        cell = (det, shift, method, int(row['shots']))
        if lrs.setdefault(cell, float(row['lr'])) != float(row['lr']):
            raise ValueError(
                f'{osp.dirname(osp.dirname(path))}: reported runs of k='
                f'{cell[3]} at learning rates {lrs[cell]:g} and '
                f'{float(row["lr"]):g}; a cell reports one setting')
        seeds.setdefault(cell, []).append(int(row['seed']))
    return {cell: CellSetting(lr, tuple(sorted(seeds[cell])))
            for cell, lr in lrs.items()}


def base_files(detectors: Sequence[str], work_root: str,
               pretrain: bool = False) -> Dict[str, str]:
    """``{det: base file}``: the shipped base, or (``pretrain``, or none
    shipped) one to pretrain into ``<work_root>/bases/``."""
    files = {}
    for det in detectors:
        shipped = shipped_base(det)
        if pretrain or not osp.exists(shipped):
            files[det] = osp.join(work_root, 'bases', osp.basename(shipped))
        else:
            files[det] = shipped
    return files


#: Where a suite's work dir records the protocol its runs share.
PROTOCOL_FILE = 'protocol.json'


#: What a ``protocol.json`` written before a field existed meant by it.
LEGACY_PROTOCOL = dict(weight_decay='recipe', selection_seeds=None)


def check_protocol(work_root: str, protocol: Dict) -> None:
    """Record ``protocol`` (what every run of a suite shares: numerics,
    schedule, iterations, weight decay, selection seeds) in ``work_root``;
    ``SystemExit`` when the runs already there were made under another one,
    since a table must not mix two protocols."""
    path = osp.join(work_root, PROTOCOL_FILE)
    recorded = read_json(path)
    if recorded is not None:
        recorded = dict(LEGACY_PROTOCOL, **recorded)
    if recorded is not None and recorded != protocol:
        differ = ', '.join(
            f'{k}: {recorded.get(k)} there, {protocol.get(k)} asked'
            for k in dict.fromkeys([*recorded, *protocol])
            if recorded.get(k) != protocol.get(k))
        raise SystemExit(
            f'{work_root} holds runs of another protocol ({differ}): give '
            f'this one its own --work-dir, or ask for the same protocol.')
    if recorded is None:
        if glob.glob(osp.join(work_root, '*', '*', '*', '*', METRICS)):
            raise SystemExit(
                f'{work_root} holds runs made before suites recorded their '
                f'protocol (numerics and schedule unknown): give this suite '
                f'its own --work-dir.')
        atomic_write_json(protocol, path, indent=1)


def cached_run_holds(task: GridTask, cached: Dict) -> bool:
    """Whether a cached run drawn from other runs' results (an extension
    past the grid, a seed of the selected setting, an extra seed of a wide
    interval) is still what the rules make of those runs now; a result
    that no longer holds is run again (``GridTask.recheck``)."""
    a = task.args
    if 'widen_of' in a:
        reported = [read_json(f) for f in a['widen_of']]
        if None in reported:
            return False
        if not needs_more_seeds(reported, a['target_half_width']):
            return bool(cached.get('skipped'))
        if cached.get('skipped'):
            return False
        if 'candidates' not in a:  # a fixed learning rate
            return True
    rows = [read_json(f) for f in a.get('edge_of') or a['candidates']]
    if None in rows:
        return False
    recipe = recipe_lr(a['det'], a['method'])
    wanted = (next_edge_lr(rows, recipe, a['edge_step'])
              if 'edge_of' in a else select_lr(rows, recipe))
    got = cached.get('lr')
    if wanted is None or got in (None, ''):
        return wanted is None and got in (None, '')
    return math.isclose(float(got), wanted, rel_tol=1e-6)


#: the check of cached runs that other runs' dev APs decide
RECHECK = function_name(cached_run_holds)
ZERO_SHOT = function_name(evaluate_zero_shot)
TUNE = function_name(tune)
PRETRAIN = function_name(pretrain)


def is_pretrain(task: GridTask) -> bool:
    """Whether ``task`` pretrains a base."""
    return task.function == PRETRAIN


def _lr_name(lr: float) -> str:
    # as many digits as the grid keeps, so two lrs never share a folder
    return f'lr{lr:.3g}'


def _pretrain_tasks(plan: TransferPlan
                    ) -> Tuple[List[GridTask], Dict[str, Tuple[str, ...]]]:
    """The pretraining of the bases that do not exist, and per detector the
    names of the tasks its runs wait for."""
    tasks, after = [], {}
    for det in plan.detectors:
        after[det] = ()
        if not osp.exists(plan.bases[det]):
            tasks.append(pretrain_task(det, plan.root, plan.work_root,
                                       plan.pretrain_iters[det],
                                       plan.bases[det]))
            after[det] = (tasks[-1].name, )
    return tasks, after


def _task(plan: TransferPlan, name: str, work: str, function: str,
          args: Dict, after: Tuple[str, ...] = (),
          recheck: Optional[str] = None) -> GridTask:
    """A run of the suite working in ``work``, its result recorded in
    ``plan.record_file(work)``."""
    return GridTask(name, work, function, args, after,
                    plan.record_file(work), recheck)


def _cell_tasks(plan: TransferPlan, args: Dict, folder: str,
                lrs: Sequence[float],
                after: Tuple[str, ...]) -> List[GridTask]:
    """The runs of one (detector, shift, method, k): the learning rates on
    every selection seed, the steps past the grid's end (each on every
    selection seed), then the reported seeds at the selected one. A single
    learning rate needs no selection: only the reported seeds run (a cell
    run again from a finished suite: the seeds it ran there)."""
    k, label = args['shots'], '{det} {shift} {method}'.format(**args)
    if len(lrs) == 1:
        rerun = plan.rerun_seeds(args['det'], args['shift'], args['method'],
                                 k)
        tasks = []
        for seed in plan.seeds if rerun is None else rerun:
            name = f'k{k}_seed{seed}_{_lr_name(lrs[0])}'
            tasks.append(_task(
                plan, f'{label} {name}', osp.join(folder, name), TUNE,
                dict(args, seed=seed, lr=lrs[0]), after))
        if rerun is not None:
            return tasks
        return tasks + _extra_seed_tasks(
            plan, label, folder, _lr_name(lrs[0]), dict(args, lr=lrs[0]),
            tasks)
    selection = []
    for seed in plan.selection_seeds:
        for lr in lrs:
            name = f'k{k}_select{seed}_{_lr_name(lr)}'
            selection.append(_task(
                plan, f'{label} {name}', osp.join(folder, name), TUNE,
                dict(args, seed=seed, lr=lr, role='selection'), after))
    step = log_step(lrs)
    for i in range(1, plan.lr_edge_steps + 1):
        before = [t.result_file for t in selection]
        names = tuple(t.name for t in selection)
        for seed in plan.selection_seeds:
            name = f'k{k}_select{seed}_edge{i}'
            selection.append(_task(
                plan, f'{label} {name}', osp.join(folder, name), TUNE,
                dict(args, seed=seed, edge_step=step, edge_of=before,
                     role='selection'), names, RECHECK))
    reported = []
    for seed in plan.seeds:
        name = f'k{k}_seed{seed}_selected'
        reported.append(_task(
            plan, f'{label} {name}', osp.join(folder, name), TUNE,
            dict(args, seed=seed,
                 candidates=[t.result_file for t in selection]),
            tuple(t.name for t in selection), RECHECK))
    return selection + reported + _extra_seed_tasks(
        plan, label, folder, 'selected',
        dict(args, candidates=[t.result_file for t in selection]),
        reported)


def _extra_seed_tasks(plan: TransferPlan, label: str, folder: str,
                      suffix: str, args: Dict,
                      reported: List[GridTask]) -> List[GridTask]:
    """The extra seeds of a cell (the same setting as ``reported``), each
    run only when the reported seeds' interval is too wide, always for the
    reference method (``protocol.REFERENCE_METHOD``); they follow the
    reported seeds' naming, so the report reads them as reported."""
    tasks = []
    k = args['shots']
    always = args['method'] == REFERENCE_METHOD
    condition = {} if always else dict(
        widen_of=[t.result_file for t in reported],
        target_half_width=plan.target_half_width)
    # a fixed learning rate run unconditionally decides nothing
    recheck = None if always and 'candidates' not in args else RECHECK
    for seed in plan.extra_seeds:
        name = f'k{k}_seed{seed}_{suffix}'
        tasks.append(_task(
            plan, f'{label} {name}', osp.join(folder, name), TUNE,
            dict(args, seed=seed, **condition),
            tuple(dict.fromkeys(
                [n for t in reported for n in t.after] +
                [t.name for t in reported])), recheck))
    return tasks


def make_tasks(plan: TransferPlan) -> List[GridTask]:
    """The suite's grid tasks: pretraining for the bases that need it, the
    zero-shot evaluations, then per (k, method, shift) the learning-rate
    runs on the selection seeds (the grid, then up to ``lr_edge_steps``
    steps past its end where the best mean dev AP sits) and the selected
    setting on the reported seeds."""
    tasks, after = _pretrain_tasks(plan)
    for det in plan.detectors:
        common = dict(det=det, root=plan.root, base=plan.bases[det],
                      weight_decay=plan.weight_decay)
        if 'zero_shot' in plan.methods:
            for shift in plan.shifts:
                work = osp.join(plan.work_root, det, shift, 'zero_shot')
                tasks.append(_task(
                    plan, f'{det} {shift} zero_shot', work, ZERO_SHOT,
                    dict(common, shift=shift, shots=plan.shots[0],
                         seed=plan.seeds[0]), after[det]))
        for k in plan.shots:
            for method in plan.methods:
                if method == 'zero_shot':
                    continue
                for shift in plan.shifts:
                    lrs = plan.learning_rates(det, shift, method, k)
                    if not lrs:
                        continue
                    tasks += _cell_tasks(
                        plan, dict(common, shift=shift, method=method,
                                   shots=k, iters=plan.iters,
                                   schedule=plan.schedule),
                        osp.join(plan.work_root, det, shift, method), lrs,
                        after[det])
    return tasks
