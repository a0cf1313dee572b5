"""The transfer suite: few-shot tuning of every method on four target shifts
of the synthetic corpus, from shipped tiny bases, under one protocol.

Protocol (the same for every method, ablation and shift):

1. **Bases.** The tiny GLIP / Grounding DINO pretrained on the corpus's source
   domain (``experiments/bases.py``): the shipped ``checkpoints/synthetic/``
   files, or pretrained here (``--pretrain``, deterministic).
2. **Learning rate.** Each method's recipe learning rate (its zoo config)
   times the same log-spaced factors (default 0.1, 1, 10), all trained on the
   first few-shot seed for the same number of iterations; the one with the
   best AP on the shift's **dev** split is selected (ties: the one nearest
   the recipe). The dev split is disjoint from the k shots and from test.
   When the best dev AP sits at an end of the learning rates tried, the grid
   goes one log step further past that end, up to ``lr_edge_steps`` times
   (default 2), so that no method is reported at a learning rate its grid
   cut off; the report counts the cells still selected at an end. A *flat*
   grid (every dev AP within ``FLAT_DEV_AP`` of the others) cannot tell its
   learning rates apart, so it goes one step past its top: on these tasks a
   flat grid means the method has not yet moved the base far enough to
   matter (a larger step that loses puts the best inside and stops).
3. **Seeds.** The selected setting is run on every few-shot seed (the split
   and the training seed); tables give the **test** AP as mean ± std.

Every run also records (``metrics.json`` in its folder, a row of
``transfer.csv``): the source-domain AP with its method on (forgetting); the
test AP with the fusion residual removed; the relative change its method
makes to the fused features against the base; the largest difference between
its predictions with the method switched off and the base's (0 = exactly the
base); the gradient norm of the trainable parameters at the first step; the
loss flatness of its last tenth. A run whose loss turns non-finite
(``FiniteLossHook``) stops there and scores 0 on dev and test, with the
reason in ``diverged``: that learning rate broke the method. Zero-shot rows add the text-side oracle
(the base with the names it learnt) where the shift has one.

Finished runs are skipped (their ``metrics.json`` is read back), so the same
command completes an interrupted suite.
"""
import copy
import csv
import io
import math
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

from ..datasets.synthetic.corpus import (SHIFTS, SOURCE_CLASSES,
                                         base_names_ann_file, shift_dir)
from ..evaluation.plots import plot_ap_vs_trainable
from ..evaluation.statistics import format_mean_std, mean_std, pick_metrics
from ..utils.cli import REPO_ROOT
from ..utils.io import atomic_write_text, read_json
from .ablations import ABLATIONS, apply_ablation
from .bases import pretrain_task
from .grid import GridTask
from .zoo import DETECTORS, zoo_config, zoo_methods

DETECTOR_NAMES = {'glip': 'GLIP (tiny)', 'gdino': 'Grounding DINO (tiny)'}
DEFAULT_SHOTS = (1, 10)
DEFAULT_SEEDS = (3, 30, 300)
DEFAULT_LR_FACTORS = (0.1, 1.0, 10.0)
DEFAULT_ITERS = 200
DEFAULT_LR_EDGE_STEPS = 2
#: dev APs all within this of each other: the grid cannot choose
FLAT_DEV_AP = 0.01
#: torch threads of every run: results depend on it, so it is fixed
RUN_THREADS = 1
METRICS = 'metrics.json'
#: the check of cached runs that other runs' dev APs decide
RECHECK = f'{__name__}:cached_run_holds'
CSV_FIELDS = [
    'detector', 'shift', 'method', 'key', 'shots', 'seed', 'lr', 'selected',
    'edge', 'dev_AP', 'AP', 'AP50', 'source_AP', 'no_fusion_AP', 'oracle_AP',
    'feature_change_image', 'feature_change_text', 'prompts_off_max_diff',
    'grad_norm_first_step', 'loss_first', 'loss_last', 'loss_flatness',
    'trainable', 'total', 'iters', 'step_time_s', 'wall_s', 'diverged'
]


def transfer_config(det: str) -> str:
    return osp.join(REPO_ROOT, 'configs', 'transfer',
                    f'{det}_tiny_synthetic.py')


def suite_methods(det: str = 'gdino') -> List[str]:
    """The zoo's methods, then SDPT's ablations."""
    return zoo_methods(det) + list(ABLATIONS)


def zoo_method_of(method: str) -> str:
    return 'sdpt' if method in ABLATIONS else method


def apply_method(cfg, det: str, method: str):
    """Give ``cfg`` the method ``method`` (a zoo method or an ablation).

    Zoo configs differ from their base only in these fields (a test checks
    it), so copying them moves the method exactly.
    """
    from mmengine.config import Config
    source = Config.fromfile(zoo_config(zoo_method_of(method), det))
    cfg.model.prompt = source.model.get('prompt')
    cfg.model.extra_trainable = source.model.get('extra_trainable', [])
    # the method's recipe (GLIP's language prompt brings its own decay)
    for key in ('lr', 'weight_decay'):
        cfg.optim_wrapper.optimizer[key] = source.optim_wrapper.optimizer[key]
    cfg.evaluate_only = source.get('evaluate_only', False)
    cfg.experiment = dict(cfg.experiment, method=source.experiment['method'])
    if method in ABLATIONS:
        apply_ablation(cfg, det, method)
    return cfg


def recipe_lr(det: str, method: str) -> float:
    from mmengine.config import Config
    return float(Config.fromfile(zoo_config(
        zoo_method_of(method), det)).optim_wrapper.optimizer.lr)


def set_corpus_root(cfg, root: str):
    """Point every corpus path of a transfer config at ``root``."""
    default = 'data/synthetic/'
    root = root.rstrip('/') + '/'

    def fix(value):
        if isinstance(value, str) and value.startswith(default):
            return root + value[len(default):]
        if isinstance(value, dict):
            for k in value:
                value[k] = fix(value[k])
        elif isinstance(value, list):
            value[:] = [fix(v) for v in value]
        return value

    for key in list(cfg.keys()):
        cfg[key] = fix(cfg[key])
    return cfg


def split_loader(cfg, data_root: str, classes: Sequence[str], split: str,
                 ann_file: Optional[str] = None):
    """(dataloader, evaluator) configs evaluating ``split`` of
    ``data_root`` with ``classes`` (``cfg``'s test pipeline)."""
    data_root = data_root.rstrip('/') + '/'
    ann_file = ann_file or f'annotations/instances_{split}.json'
    loader = copy.deepcopy(cfg.test_dataloader)
    loader.dataset.update(data_root=data_root, ann_file=ann_file,
                          metainfo=dict(classes=tuple(classes)),
                          data_prefix=dict(img=f'{split}/'))
    evaluator = dict(copy.deepcopy(cfg.test_evaluator),
                     ann_file=data_root + ann_file)
    return loader, evaluator


def apply_shift(cfg, root: str, shift: str, shots: int, seed: int):
    """Train on the k-shot split of ``shift``; val = dev, test = test."""
    data_root = shift_dir(root, shift) + '/'
    classes = SHIFTS[shift].classes
    cfg.metainfo = dict(classes=classes)
    cfg.train_dataloader.dataset.update(
        data_root=data_root, metainfo=dict(classes=classes),
        ann_file=f'annotations/instances_train_{shots}shot_seed{seed}.json')
    cfg.val_dataloader, cfg.val_evaluator = split_loader(
        cfg, data_root, classes, 'dev')
    cfg.test_dataloader, cfg.test_evaluator = split_loader(
        cfg, data_root, classes, 'test')
    cfg.shots, cfg.seed = shots, seed
    return cfg


def _load(det: str, task: GridTask, seed: int):
    from mmengine.config import Config
    a = task.args
    cfg = Config.fromfile(transfer_config(det))
    set_corpus_root(cfg, a['root'])
    cfg.work_dir = task.work_dir
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=seed, deterministic=True)
    cfg.load_from = cfg.base_weights = a['base']
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='ProgressHook', label=task.name)]
    return cfg


def _evaluate(runner, loader, evaluator) -> Dict:
    from mmengine.runner import TestLoop
    loop = TestLoop(runner, copy.deepcopy(loader), copy.deepcopy(evaluator))
    return pick_metrics(loop.run())


def _base_detector(cfg):
    """The base detector alone (no method), with the base weights."""
    from mmdet.registry import MODELS
    from mmengine.runner import load_checkpoint
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(prompt=None, extra_trainable=[])
    base = MODELS.build(model_cfg)
    load_checkpoint(base, cfg.load_from, map_location='cpu',
                    logger='silent')
    return base.eval()


def _first_batch(runner, loader):
    dataloader = runner.build_dataloader(copy.deepcopy(loader))
    return next(iter(dataloader))


def _source_and_fusion(runner, cfg, root: str) -> Dict:
    from ..evaluation.diagnostics import fusion_residual_removed
    model = runner.model
    out = dict(source_AP=_evaluate(runner, *split_loader(
        cfg, osp.join(root, 'source'), SOURCE_CLASSES, 'val')).get('AP'))
    with fusion_residual_removed(model):
        out['no_fusion_AP'] = _evaluate(runner, cfg.test_dataloader,
                                        cfg.test_evaluator).get('AP')
    return out


def _history(runner, key: str) -> List[float]:
    try:
        return [float(v) for v in
                runner.message_hub.get_scalar(key).data[0]]
    except KeyError:
        return []


# ---- grid tasks (run in the grid's workers) ------------------------------
def evaluate_zero_shot(task: GridTask) -> Dict:
    """The base on one shift: dev, test, source, oracle, fusion removed."""
    import torch
    from mmengine.runner import Runner
    torch.set_num_threads(RUN_THREADS)
    a = task.args
    det, shift = a['det'], a['shift']
    start = time.time()
    cfg = _load(det, task, seed=0)
    apply_method(cfg, det, 'zero_shot')
    apply_shift(cfg, a['root'], shift, a['shots'], a['seed'])
    runner = Runner.from_cfg(cfg)
    test = pick_metrics(runner.test())  # loads the base, starts the hooks
    row = dict(
        detector=DETECTOR_NAMES[det], shift=shift,
        method=cfg.experiment['method'], key='zero_shot', shots=0, seed='',
        lr='', dev_AP=_evaluate(runner, cfg.val_dataloader,
                                cfg.val_evaluator).get('AP'),
        **test, **_source_and_fusion(runner, cfg, a['root']),
        feature_change_image=0.0, feature_change_text=0.0,
        prompts_off_max_diff=0.0, trainable=0,
        total=sum(p.numel() for p in runner.model.parameters()))
    names = SHIFTS[shift].base_names
    if names:
        data_root = shift_dir(a['root'], shift)
        row['oracle_AP'] = _evaluate(runner, *split_loader(
            cfg, data_root, names, 'test', base_names_ann_file(
                'annotations/instances_test.json'))).get('AP')
    row['wall_s'] = round(time.time() - start, 1)
    return row


def select_lr(rows: Sequence[Dict], recipe: float) -> Optional[float]:
    """The lr of the best dev AP; ties go to the one nearest the recipe."""
    rows = [r for r in rows if r.get('lr') not in (None, '')]
    if not rows:
        return None
    def distance(lr: float) -> float:  # lr 0: the method as initialised
        return abs(math.log10(lr / recipe)) if lr > 0 else math.inf

    best = max(rows, key=lambda r: (
        r.get('dev_AP') if r.get('dev_AP') is not None else -1.0,
        -distance(float(r['lr']))))
    return float(best['lr'])


def next_edge_lr(rows: Sequence[Dict], recipe: float,
                 step: float) -> Optional[float]:
    """The learning rate one ``step`` past the end of the ones tried (in
    ``rows``) where the best dev AP sits, or None when it sits inside."""
    rows = [r for r in rows if r.get('lr') not in (None, '')]
    lrs = sorted({float(r['lr']) for r in rows})
    chosen = select_lr(rows, recipe)
    if chosen is None or len(lrs) < 2:
        return None
    if chosen == lrs[0] and not is_flat(rows):
        return float(f'{chosen / step:.3g}')
    if chosen == lrs[-1] or is_flat(rows):
        return float(f'{lrs[-1] * step:.3g}')
    return None


def is_flat(rows: Sequence[Dict]) -> bool:
    """Whether the dev APs of ``rows`` (two or more) are all within
    ``FLAT_DEV_AP`` of each other."""
    dev = [r.get('dev_AP') for r in rows]
    if len(dev) < 2 or None in dev:
        return False
    return max(dev) - min(dev) <= FLAT_DEV_AP + 1e-9


def cached_run_holds(task: GridTask, cached: Dict) -> bool:
    """Whether a cached run drawn from other runs' dev APs (an extension
    past the grid, or a seed of the selected setting) is still what the
    selection rules make of those runs now; a result that no longer holds is
    run again (``GridTask.recheck``)."""
    a = task.args
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


def tune(task: GridTask) -> Dict:
    """Tune one method on one k-shot split of one shift, then evaluate and
    diagnose it. ``args['lr']``; or ``args['candidates']``: the result files
    of the learning-rate runs to select from on dev; or ``args['edge_of']``:
    the result files of the runs so far, to go one ``args['edge_step']``
    past their end when the best dev AP sits there (else nothing runs and
    the result says ``skipped``)."""
    import torch
    from mmengine.runner import Runner
    from ..engine.hooks import NonFiniteLossError
    from ..evaluation.diagnostics import (fused_feature_change,
                                          loss_flatness,
                                          prompts_off_difference)
    a = task.args
    det, shift, method = a['det'], a['shift'], a['method']
    shots, seed, iters = a['shots'], a['seed'], a['iters']
    start = time.time()
    recipe = recipe_lr(det, method)
    lr = a.get('lr')
    if 'edge_of' in a:
        lr = next_edge_lr([read_json(f) or {} for f in a['edge_of']],
                          recipe, a['edge_step'])
        if lr is None:
            return dict(skipped='the best dev AP is inside the learning '
                        'rates tried', lr=None)
    torch.set_num_threads(RUN_THREADS)
    if lr is None:
        lr = select_lr([read_json(f) or {} for f in a['candidates']], recipe)
        if lr is None:
            raise RuntimeError('no learning-rate run finished to select from')
    cfg = _load(det, task, seed=seed)
    apply_method(cfg, det, method)
    apply_shift(cfg, a['root'], shift, shots, seed)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.merge_from_dict({
        'train_cfg.max_iters': iters,
        # dev is evaluated once, below, not during training
        'train_cfg.val_interval': iters + 1,
        'default_hooks.checkpoint.interval': iters})
    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except NonFiniteLossError as err:
        # This learning rate broke the method: no model to evaluate, the
        # worst score for the selection, and the reason in the row.
        return dict(
            detector=DETECTOR_NAMES[det], shift=shift,
            method=cfg.experiment['method'], key=method, shots=shots,
            seed=seed, lr=lr, recipe_lr=recipe,
            selected='candidates' in a, edge='edge_of' in a, dev_AP=0.0,
            AP=0.0, AP50=0.0, diverged=str(err).split('. Training')[0],
            trainable=sum(p.numel() for p in runner.model.parameters()
                          if p.requires_grad),
            total=sum(p.numel() for p in runner.model.parameters()),
            iters=iters, wall_s=round(time.time() - start, 1))
    losses = _history(runner, 'train/loss')
    grad_norms = _history(runner, 'train/grad_norm')
    row = dict(
        detector=DETECTOR_NAMES[det], shift=shift,
        method=cfg.experiment['method'], key=method, shots=shots, seed=seed,
        lr=lr, recipe_lr=recipe, selected='candidates' in a,
        edge='edge_of' in a,
        dev_AP=_evaluate(runner, cfg.val_dataloader,
                         cfg.val_evaluator).get('AP'),
        **_evaluate(runner, cfg.test_dataloader, cfg.test_evaluator),
        **_source_and_fusion(runner, cfg, a['root']))
    model = runner.model.eval()
    base = _base_detector(cfg)
    batch = _first_batch(runner, cfg.test_dataloader)
    change = fused_feature_change(model, base, batch)
    cost = read_json(osp.join(task.work_dir, 'train_cost.json'), {})
    row.update(
        feature_change_image=change['image'],
        feature_change_text=change['text'],
        # With detector parameters trained too, "off" is not the base.
        prompts_off_max_diff=None if cfg.model.extra_trainable else
        prompts_off_difference(model, base, batch),
        grad_norm_first_step=grad_norms[0] if grad_norms else None,
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
        loss_flatness=loss_flatness(losses),
        trainable=sum(p.numel() for p in model.parameters()
                      if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()), iters=iters,
        step_time_s=cost.get('step_time_s'),
        wall_s=round(time.time() - start, 1))
    return row


# ---- driver side ---------------------------------------------------------
def prepare_data(root: str, shifts: Sequence[str], shots_list: Sequence[int],
                 seeds: Sequence[int]) -> None:
    """The corpus and every shift's k x seed splits (once)."""
    import contextlib
    from ..datasets.few_shot import run_protocol
    from ..datasets.synthetic.corpus import make_synthetic_corpus
    make_synthetic_corpus(root, shifts=shifts)
    for shift in shifts:
        ann = osp.join(shift_dir(root, shift), 'annotations',
                       'instances_train.json')
        missing = [(k, s) for k in shots_list for s in seeds
                   if not osp.exists(osp.join(
                       osp.dirname(ann),
                       f'instances_train_{k}shot_seed{s}.json'))]
        if missing:
            with contextlib.redirect_stdout(io.StringIO()):
                status, _ = run_protocol(ann, shots_list, seeds)
            if status:
                raise RuntimeError(f'few-shot splits of {ann} failed')


def _lr_name(lr: float) -> str:
    # as many digits as the grid keeps, so two lrs never share a folder
    return f'lr{lr:.3g}'


def make_tasks(detectors: Sequence[str], shifts: Sequence[str],
               methods: Sequence[str], shots_list: Sequence[int],
               seeds: Sequence[int], lr_factors: Sequence[float],
               fixed_lrs: Dict[str, float], iters: int, root: str,
               work_root: str, bases: Dict[str, str],
               pretrain_iters: Dict[str, int],
               lr_edge_steps: int = DEFAULT_LR_EDGE_STEPS) -> List[GridTask]:
    """Pretraining for the bases that need it, the zero-shot evaluations,
    then per (k, method, shift): the learning-rate runs on the first seed
    (the grid, then up to ``lr_edge_steps`` runs past its end where the
    best dev AP sits) and the selected setting on the other seeds.

    ``bases``: ``{det: base file}``; a file that does not exist is
    pretrained first.
    """
    tasks, after = [], {}
    for det in detectors:
        if not osp.exists(bases[det]):
            tasks.append(pretrain_task(det, root, work_root,
                                       pretrain_iters[det], bases[det]))
            after[det] = (tasks[-1].name, )
        else:
            after[det] = ()
    for det in detectors:
        common = dict(det=det, root=root, base=bases[det])
        for shift in shifts:
            if 'zero_shot' in methods:
                name = f'{det} {shift} zero_shot'
                work = osp.join(work_root, det, shift, 'zero_shot')
                tasks.append(GridTask(
                    name, work, f'{__name__}:evaluate_zero_shot',
                    dict(common, shift=shift, shots=shots_list[0],
                         seed=seeds[0]), after[det],
                    osp.join(work, METRICS)))
        for k in shots_list:
            for method in methods:
                if method == 'zero_shot':
                    continue
                if method in fixed_lrs:
                    lrs = [fixed_lrs[method]]
                else:
                    recipe = recipe_lr(det, method)
                    lrs = [float(f'{recipe * f:.3g}') for f in lr_factors]
                for shift in shifts:
                    folder = osp.join(work_root, det, shift, method)
                    args = dict(common, shift=shift, method=method, shots=k,
                                iters=iters)
                    first = []
                    for lr in lrs:
                        name = f'k{k}_seed{seeds[0]}_{_lr_name(lr)}'
                        work = osp.join(folder, name)
                        first.append(GridTask(
                            f'{det} {shift} {method} {name}', work,
                            f'{__name__}:tune',
                            dict(args, seed=seeds[0], lr=lr), after[det],
                            osp.join(work, METRICS)))
                    if len(lrs) > 1:
                        # the grid's log step, e.g. 10 for factors 0.1 1 10
                        step = (max(lrs) / min(lrs))**(1 / (len(lrs) - 1))
                        for i in range(1, lr_edge_steps + 1):
                            name = f'k{k}_seed{seeds[0]}_edge{i}'
                            work = osp.join(folder, name)
                            first.append(GridTask(
                                f'{det} {shift} {method} {name}', work,
                                f'{__name__}:tune',
                                dict(args, seed=seeds[0], edge_step=step,
                                     edge_of=[t.result_file for t in first]),
                                tuple(t.name for t in first),
                                osp.join(work, METRICS), RECHECK))
                    tasks += first
                    for seed in seeds[1:]:
                        if len(lrs) == 1:
                            name = f'k{k}_seed{seed}_{_lr_name(lrs[0])}'
                            extra, deps = dict(lr=lrs[0]), after[det]
                        else:
                            name = f'k{k}_seed{seed}_selected'
                            extra = dict(candidates=[
                                t.result_file for t in first])
                            deps = tuple(t.name for t in first)
                        work = osp.join(folder, name)
                        tasks.append(GridTask(
                            f'{det} {shift} {method} {name}', work,
                            f'{__name__}:tune', dict(args, seed=seed,
                                                     **extra), deps,
                            osp.join(work, METRICS),
                            RECHECK if 'candidates' in extra else None))
    return tasks


def is_pretrain(task: GridTask) -> bool:
    return task.function.endswith(':pretrain')


# ---- report --------------------------------------------------------------
def finished_rows(tasks: Sequence[GridTask]) -> Dict:
    """The results of the suite's cells whose every run has finished, for a
    report while (or without) running the rest.

    A cell is one zero-shot evaluation, or one (detector, shift, method, k)
    with its learning-rate runs and seeds: a cell with runs still to do is
    left out whole, so that no table mixes a finished cell with half of one.
    Returns ``dict(rows=..., cells=n_finished, unfinished=n_cells_left_out,
    runs_left=n_runs_to_do)``.
    """
    cells = {}
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
    rows, unfinished, runs_left = [], 0, 0
    for results in cells.values():
        missing = sum(r is None for r in results)
        if missing:
            unfinished += 1
            runs_left += missing
        else:
            rows += [r for r in results if not r.get('skipped')]
    return dict(rows=rows, cells=len(cells) - unfinished,
                unfinished=unfinished, runs_left=runs_left)


def _tuned_cells(rows: Sequence[Dict]):
    """Per tuned (detector, shift, method, k): ``(cell, first, chosen)``,
    its runs, those of its first seed (the learning-rate runs) and the lr
    selected on dev among them. Skipped extensions are not runs."""
    cells = {}
    for r in rows:
        if r.get('key') != 'zero_shot' and r.get('lr') not in (None, ''):
            cells.setdefault((r['detector'], r['shift'], r['key'],
                              r['shots']), []).append(r)
    for cell in cells.values():
        seed = sorted({r['seed'] for r in cell})[0]
        first = [r for r in cell if r['seed'] == seed]
        recipe = cell[0].get('recipe_lr') or float(first[0]['lr'])
        yield cell, first, select_lr(first, recipe)


def final_rows(rows: Sequence[Dict]) -> List[Dict]:
    """Per (detector, shift, method, k): the rows of the selected lr (every
    seed), with ``selected`` set; zero-shot rows as they are."""
    out = [r for r in rows if r.get('key') == 'zero_shot']
    for cell, _, chosen in _tuned_cells(rows):
        out += [dict(r, selected=True) for r in cell
                if float(r['lr']) == chosen]
    return out


def lr_grids(rows: Sequence[Dict]) -> List[Dict]:
    """Per tuned (detector, shift, method, k) with more than one learning
    rate: the ones tried on the first seed, how many the grid had (the rest
    came from going past its end) and the selected one."""
    out = []
    for _, first, chosen in _tuned_cells(rows):
        tried = sorted({float(r['lr']) for r in first})
        if len(tried) > 1:
            grid = [r for r in first if not r.get('edge')]
            out.append(dict(tried=tried, chosen=chosen, grid=len(grid),
                            flat=is_flat(grid)))
    return out


def _cell(rows, key='AP', digits=3) -> str:
    mean, std, _ = mean_std([r.get(key) for r in rows])
    return format_mean_std(mean, std, digits) if mean is not None else '–'


def shift_table(rows: Sequence[Dict], shots_list: Sequence[int]) -> List[str]:
    """Markdown lines: one row per method of one (detector, shift)."""
    shots_list = sorted(shots_list)
    big = max(shots_list)
    header = ('| method | trainable | ' + ' | '.join(
        f'AP k={k} | lr k={k}' for k in shots_list) +
        f' | source AP (k={big}) | AP, fusion removed (k={big}) | '
        f'Δ fused features image / text (k={big}) |')
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    for key in dict.fromkeys(r['key'] for r in rows):
        mine = [r for r in rows if r['key'] == key]
        zero = key == 'zero_shot'
        cells = []
        for k in shots_list:
            at_k = mine if zero else [r for r in mine if r['shots'] == k]
            lrs = sorted({r['lr'] for r in at_k})
            cells += [_cell(at_k), '–' if zero or not lrs else
                      ', '.join(f'{float(lr):.0e}' for lr in lrs)]
        at_big = mine if zero else [r for r in mine if r['shots'] == big]
        change = ' / '.join(_cell(at_big, f'feature_change_{side}', 2)
                            for side in ('image', 'text'))
        trainable = mine[0]['trainable']
        lines.append(
            f"| {mine[0]['method']} | {int(trainable):,} | " +
            ' | '.join(cells) + f" | {_cell(at_big, 'source_AP')} | "
            f"{_cell(at_big, 'no_fusion_AP')} | {change} |")
    return lines


def write_report(rows: List[Dict], shots_list: Sequence[int], out_dir: str,
                 base_meta: Dict[str, Dict]) -> str:
    """``transfer.md``, ``transfer.csv`` (every run) and one plot per shift
    (``ap_vs_trainable_<shift>.png``); returns the markdown."""
    chosen = sort_rows(final_rows(rows))
    lines = []
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
        lines.append('')
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
            f'{at_end} are still selected at an end of the learning rates '
            f'they tried.')
    off = [r['prompts_off_max_diff'] for r in tuned
           if r.get('prompts_off_max_diff') is not None]
    if off:
        lines.append(
            f'Method switched off: {sum(d == 0 for d in off)} of {len(off)} '
            f'reported runs that can switch off predict exactly as the base '
            f'(largest difference {max(off):.3g}).')
    markdown = '\n'.join(lines) + '\n'
    atomic_write_text(osp.join(out_dir, 'transfer.md'), markdown)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS,
                            extrasaction='ignore')
    writer.writeheader()
    def run_key(r):
        return (r['detector'], r['shift'], r['key'], r['shots'],
                str(r['seed']), str(r.get('lr')))

    reported = {run_key(r) for r in chosen}
    for r in sort_rows(rows):
        writer.writerow(dict(r, selected=run_key(r) in reported))
    atomic_write_text(osp.join(out_dir, 'transfer.csv'), out.getvalue())
    for shift in dict.fromkeys(r['shift'] for r in chosen):
        panels = {}
        for det_name in dict.fromkeys(r['detector'] for r in chosen):
            group = [r for r in chosen if r['detector'] == det_name
                     and r['shift'] == shift]
            points = []
            for key in dict.fromkeys(r['key'] for r in group):
                for k in sorted({r['shots'] for r in group
                                 if r['key'] == key}):
                    mine = [r for r in group if r['key'] == key
                            and r['shots'] == k]
                    mean, std, _ = mean_std([r['AP'] for r in mine])
                    points.append(dict(
                        label=mine[0]['method'],
                        series='zero-shot' if k == 0 else f'k={k}',
                        trainable=mine[0]['trainable'], AP=mean,
                        AP_std=std))
            if points:
                panels[det_name] = points
        if panels:
            plot_ap_vs_trainable(
                panels, osp.join(out_dir, f'ap_vs_trainable_{shift}.png'),
                ylabel=f'test AP, {shift} shift')
    return markdown


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


__all__ = ['DETECTORS', 'DEFAULT_SHOTS', 'DEFAULT_SEEDS',
           'DEFAULT_LR_FACTORS', 'DEFAULT_ITERS', 'apply_method',
           'apply_shift', 'make_tasks', 'prepare_data', 'write_report',
           'sort_rows', 'is_pretrain', 'transfer_config', 'suite_methods',
           'select_lr', 'next_edge_lr', 'lr_grids', 'final_rows',
           'set_corpus_root', 'DEFAULT_LR_EDGE_STEPS', 'finished_rows',
           'is_flat', 'cached_run_holds', 'FLAT_DEV_AP']
