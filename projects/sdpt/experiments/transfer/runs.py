"""The runs of the transfer suite: the data they need, and the grid tasks
(run in the grid's worker processes) that evaluate a base zero-shot and
tune, evaluate and diagnose one method.

Every run returns one row of ``transfer.csv`` (``report.CSV_FIELDS``),
which the grid writes to ``metrics.json`` in its folder.
"""
import contextlib
import copy
import io
import os.path as osp
import time
from typing import Dict, List, Sequence

import torch
from mmdet.registry import MODELS
from mmengine.runner import Runner, TestLoop, load_checkpoint

from ...datasets.few_shot import run_protocol
from ...datasets.synthetic.corpus import (
    SHIFTS,
    SOURCE_CLASSES,
    base_names_ann_file,
    make_synthetic_corpus,
    shift_dir,
)
from ...engine.config import without_yapf
from ...engine.hooks import NonFiniteLossError
from ...evaluation.diagnostics import (
    fused_feature_change,
    fusion_residual_removed,
    loss_flatness,
    prompts_off_check,
)
from ...evaluation.statistics import pick_metrics
from ...methods.trainable import trainable_parameter_report
from ...utils.io import read_json
from ...utils.numerics import numerics_record, run_threads
from ..grid import GridTask
from .configs import (
    DETECTOR_NAMES,
    apply_method,
    apply_shift,
    read_config,
    recipe_lr,
    set_corpus_root,
    split_loader,
    transfer_config,
)
from .protocol import (
    DEFAULT_SCHEDULE,
    lr_schedule,
    needs_more_seeds,
    next_edge_lr,
    schedule_hooks,
    select_lr,
)


def prepare_data(root: str, shifts: Sequence[str], shots_list: Sequence[int],
                 seeds: Sequence[int]) -> None:
    """The corpus and every shift's k x seed splits (once; on the driver,
    before any run)."""
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


def _run_config(task: GridTask, seed: int):
    """The transfer config of the task's detector, on its corpus and base,
    writing to its folder."""
    a = task.args
    # formatting the config five times a run took 5-10 s of a 70 s
    # Grounding DINO run
    cfg = without_yapf(read_config(transfer_config(a['det'])))
    set_corpus_root(cfg, a['root'])
    cfg.work_dir = task.work_dir
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=seed, deterministic=True)
    cfg.load_from = cfg.base_weights = a['base']
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='ProgressHook', label=task.name)]
    return cfg


def _evaluate(runner, loader, evaluator) -> Dict:
    loop = TestLoop(runner, copy.deepcopy(loader), copy.deepcopy(evaluator))
    return pick_metrics(loop.run())


def _base_detector(cfg):
    """The base detector alone (no method), with the base weights."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(prompt=None, extra_trainable=[])
    base = MODELS.build(model_cfg)
    load_checkpoint(base, cfg.load_from, map_location='cpu',
                    logger='silent')
    return base.eval()


def _source_and_fusion(runner, cfg, root: str) -> Dict:
    """The source-domain AP (forgetting) and the test AP with the fusion
    residual removed."""
    model = runner.model
    out = dict(source_AP=_evaluate(runner, *split_loader(
        cfg, osp.join(root, 'source'), SOURCE_CLASSES, 'val')).get('AP'))
    with fusion_residual_removed(model):
        out['no_fusion_AP'] = _evaluate(runner, cfg.test_dataloader,
                                        cfg.test_evaluator).get('AP')
    return out


def _numerics() -> Dict:
    """The run's numerics mode, and in full what its arithmetic depended
    on (``utils/numerics.py``)."""
    record = numerics_record()
    return dict(numerics=record['numerics'], platform=record)


def _history(runner, key: str) -> List[float]:
    try:
        return [float(v) for v in
                runner.message_hub.get_scalar(key).data[0]]
    except KeyError:
        return []


def evaluate_zero_shot(task: GridTask) -> Dict:
    """The base on one shift: dev, test, source, oracle, fusion removed."""
    torch.set_num_threads(run_threads())
    a = task.args
    det, shift = a['det'], a['shift']
    start = time.time()
    cfg = _run_config(task, seed=0)
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
        total=trainable_parameter_report(runner.model)['total'])
    names = SHIFTS[shift].base_names
    if names:
        data_root = shift_dir(a['root'], shift)
        row['oracle_AP'] = _evaluate(runner, *split_loader(
            cfg, data_root, names, 'test', base_names_ann_file(
                'annotations/instances_test.json'))).get('AP')
    row['wall_s'] = round(time.time() - start, 1)
    row.update(_numerics())
    return row


def _training_record(runner, work_dir: str) -> Dict:
    """What a run's training did: first / last loss, their flatness, the
    first step's gradient norm and the time per step."""
    losses = _history(runner, 'train/loss')
    grad_norms = _history(runner, 'train/grad_norm')
    cost = read_json(osp.join(work_dir, 'train_cost.json'), {})
    return dict(
        grad_norm_first_step=grad_norms[0] if grad_norms else None,
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
        loss_flatness=loss_flatness(losses),
        step_time_s=cost.get('step_time_s'))


def _dev_metrics(runner, cfg) -> Dict:
    """A learning-rate run's dev AP, all its selection reads: its test
    split is never evaluated."""
    return dict(dev_AP=_evaluate(runner, cfg.val_dataloader,
                                 cfg.val_evaluator).get('AP'))


def _trained_metrics(runner, cfg, root: str) -> Dict:
    """A reported run's dev / test / source AP, AP with the fusion removed,
    and its diagnostics against the base."""
    out = dict(
        **_dev_metrics(runner, cfg),
        **_evaluate(runner, cfg.test_dataloader, cfg.test_evaluator),
        **_source_and_fusion(runner, cfg, root))
    model = runner.model.eval()
    base = _base_detector(cfg)
    test_batches = runner.build_dataloader(copy.deepcopy(
        cfg.test_dataloader))
    change = fused_feature_change(model, base, next(iter(test_batches)))
    # With detector parameters trained too, "off" is not the base.
    off = None if cfg.model.extra_trainable else prompts_off_check(
        model, base, test_batches)
    out.update(
        feature_change_image=change['image'],
        feature_change_text=change['text'],
        prompts_off_max_diff=off and off['max_diff'],
        prompts_off_batches=off and off['batches'],
        prompts_off_failed=off and off['failed'],
        prompts_off_error=off and off['first_error'])
    return out


def tune(task: GridTask) -> Dict:
    """Tune one method on one k-shot split of one shift, then evaluate and
    diagnose it. ``args['lr']``; or ``args['candidates']``: the result files
    of the learning-rate runs to select from on dev; or ``args['edge_of']``:
    the result files of the runs so far, to go one ``args['edge_step']``
    past their end when the best dev AP sits there (else nothing runs and
    the result says ``skipped``). ``args['widen_of']``: the result files
    of the cell's reported seeds; this extra seed runs only when their
    interval is wider than ``args['target_half_width']``."""
    a = task.args
    det, shift, method = a['det'], a['shift'], a['method']
    shots, seed, iters = a['shots'], a['seed'], a['iters']
    start = time.time()
    if 'widen_of' in a and not needs_more_seeds(
            [read_json(f) or {} for f in a['widen_of']],
            a['target_half_width']):
        return dict(skipped='the reported seeds\' interval is narrow '
                    'enough', lr=None)
    recipe = recipe_lr(det, method)
    lr = a.get('lr')
    if 'edge_of' in a:
        lr = next_edge_lr([read_json(f) or {} for f in a['edge_of']],
                          recipe, a['edge_step'])
        if lr is None:
            return dict(skipped='the best dev AP is inside the learning '
                        'rates tried', lr=None)
    torch.set_num_threads(run_threads())
    if lr is None:
        lr = select_lr([read_json(f) or {} for f in a['candidates']], recipe)
        if lr is None:
            raise RuntimeError('no learning-rate run finished to select from')
    cfg = _run_config(task, seed=seed)
    apply_method(cfg, det, method, a.get('weight_decay', 'recipe'))
    apply_shift(cfg, a['root'], shift, shots, seed)
    cfg.optim_wrapper.optimizer.lr = lr
    schedule = a.get('schedule', DEFAULT_SCHEDULE)
    cfg.param_scheduler = lr_schedule(schedule, iters)
    cfg.custom_hooks = list(cfg.custom_hooks) + schedule_hooks(schedule)
    cfg.merge_from_dict({
        'train_cfg.max_iters': iters,
        # dev is evaluated once, below, not during training: mmengine's
        # loop validates at the last iteration whatever the interval, so
        # validation starts after it (that was a second dev pass, ~3%)
        'train_cfg.val_interval': iters + 1,
        'train_cfg.val_begin': iters + 1,
        'default_hooks.checkpoint.interval': iters})
    row = dict(
        detector=DETECTOR_NAMES[det], shift=shift,
        method=cfg.experiment['method'], key=method, shots=shots, seed=seed,
        lr=lr, recipe_lr=recipe, selected='candidates' in a,
        edge='edge_of' in a, schedule=schedule,
        role=a.get('role', 'report'),
        weight_decay=cfg.optim_wrapper.optimizer.weight_decay)
    runner = Runner.from_cfg(cfg)
    try:
        runner.train()
    except NonFiniteLossError as err:
        # This learning rate broke the method: no model to evaluate, the
        # worst score for the selection, and the reason in the row.
        row.update(dev_AP=0.0, AP=0.0, AP50=0.0,
                   diverged=str(err).split('. Training')[0])
    else:
        row.update(_training_record(runner, task.work_dir))
        row.update(_dev_metrics(runner, cfg) if row['role'] == 'selection'
                   else _trained_metrics(runner, cfg, a['root']))
    counts = trainable_parameter_report(runner.model)
    row.update(trainable=counts['trainable'], total=counts['total'],
               iters=iters, wall_s=round(time.time() - start, 1),
               **_numerics())
    return row
