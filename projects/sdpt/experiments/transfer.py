"""Few-shot transfer from tiny bases pretrained on the synthetic corpus.

1. :func:`prepare_data` writes the synthetic grounding corpus
   (``datasets/synthetic/corpus.py``) and the few-shot splits of its target
   domain (``datasets/few_shot.py``'s protocol names), once.
2. A *pretrain* task per detector trains it from random weights on the
   source domain (``configs/transfer/pretrain_<det>_tiny_synthetic.py``,
   every parameter trains) and caches the detector weights as
   ``ROOT/<det>_tiny_synthetic_base.pth``, with ``.json`` beside it (the
   source-domain AP and the time). A cached base is reused; delete the
   ``.pth`` to pretrain again.
3. A *transfer* task per detector x method x k x seed tunes the method on
   the k-shot target split from the base (``configs/transfer/<det>_tiny_
   synthetic.py`` with the method of the zoo's demo config, see
   ``experiments/zoo.py``: prompt, trainable patterns, learning rate and
   weight decay) and
   evaluates on the target val split. Zero-shot is evaluated once per
   detector. Its row is ``<run dir>/metrics.json``; finished runs are
   skipped.

Every task runs through the grid runner (``experiments/grid.py``);
:func:`write_report` writes ``transfer.md`` (one table per detector, AP of
every method at every k), ``transfer.csv`` (one row per run) and
``ap_vs_trainable_params.png``.
"""
import csv
import io
import os
import os.path as osp
import time
from typing import Dict, List, Sequence

from ..evaluation.plots import plot_ap_vs_trainable
from ..evaluation.statistics import format_mean_std, mean_std, pick_metrics
from ..utils.cli import REPO_ROOT
from ..utils.io import atomic_write_text, read_json
from .grid import GridTask
from .zoo import DETECTORS, zoo_config, zoo_methods

DETECTOR_NAMES = {'glip': 'GLIP (tiny)', 'gdino': 'Grounding DINO (tiny)'}
DEFAULT_PRETRAIN_ITERS = {'glip': 800, 'gdino': 2000}
METRICS = 'metrics.json'
CSV_FIELDS = ['detector', 'method', 'key', 'shots', 'seed', 'AP', 'AP50',
              'trainable', 'total', 'step_time_s', 'wall_s']


def transfer_config(det: str) -> str:
    return osp.join(REPO_ROOT, 'configs', 'transfer',
                    f'{det}_tiny_synthetic.py')


def pretrain_config(det: str) -> str:
    return osp.join(REPO_ROOT, 'configs', 'transfer',
                    f'pretrain_{det}_tiny_synthetic.py')


def base_file(root: str, det: str) -> str:
    return osp.join(root, f'{det}_tiny_synthetic_base.pth')


def apply_method(cfg, det: str, method: str):
    """Give ``cfg`` the method of the zoo's demo config for ``method``.

    Zoo configs differ from their base only in these fields (a test checks
    it), so copying them moves the method exactly.
    """
    from mmengine.config import Config
    source = Config.fromfile(zoo_config(method, det))
    cfg.model.prompt = source.model.get('prompt')
    cfg.model.extra_trainable = source.model.get('extra_trainable', [])
    # the method's recipe (GLIP's language prompt brings its own decay)
    for key in ('lr', 'weight_decay'):
        cfg.optim_wrapper.optimizer[key] = source.optim_wrapper.optimizer[key]
    cfg.evaluate_only = source.get('evaluate_only', False)
    cfg.experiment = dict(cfg.experiment, method=source.experiment['method'])
    return cfg


def _set_root(cfg, root: str):
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


def _load(path: str, root: str, work_dir: str, label: str,
          cfg_options=None):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    _set_root(cfg, root)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='ProgressHook', label=label)]
    return cfg


def _runner(cfg):
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


# ---- grid tasks (run in the grid's workers) ------------------------------
def pretrain(task: GridTask) -> Dict:
    """Train one detector on the source domain; cache its weights."""
    import torch
    from ..utils.io import atomic_write
    det, root, iters = (task.args[k] for k in ('det', 'root', 'iters'))
    start = time.time()
    cfg = _load(pretrain_config(det), root, task.work_dir, task.name, {
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
        'default_hooks.checkpoint.interval': iters})
    # The config's schedule (linear warm-up, cosine) scaled to ``iters``.
    warmup = max(1, min(50, iters // 10))
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=warmup),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup,
             end=max(iters, warmup + 1), eta_min_ratio=0.05)
    ]
    runner = _runner(cfg)
    runner.train()
    metrics = runner.test()
    detector = getattr(runner.model, 'detector', runner.model)
    buffer = io.BytesIO()
    torch.save({'state_dict': detector.state_dict(), 'meta': {}}, buffer)
    atomic_write(base_file(root, det), buffer.getvalue())
    return dict(
        corpus='projects/sdpt/datasets/synthetic/corpus.py (source domain)',
        config=osp.relpath(pretrain_config(det), REPO_ROOT), iters=iters,
        source_val=pick_metrics(metrics),
        train_s=round(time.time() - start, 1))


def tune_and_evaluate(task: GridTask) -> Dict:
    """Tune one method on one k-shot split and evaluate; returns a row."""
    a = task.args
    det, method, shots, seed = a['det'], a['method'], a['shots'], a['seed']
    start = time.time()
    cfg = _load(transfer_config(det), a['root'], task.work_dir, task.name)
    apply_method(cfg, det, method)
    cfg.train_dataloader.dataset.ann_file = \
        f'annotations/instances_train_{shots}shot_seed{seed}.json'
    cfg.merge_from_dict({
        'train_cfg.max_iters': a['iters'],
        'train_cfg.val_interval': a['iters'],
        'default_hooks.checkpoint.interval': a['iters'],
        'shots': shots, 'seed': seed})
    runner = _runner(cfg)
    if not cfg.evaluate_only:
        runner.train()
    metrics = runner.test()
    cost = read_json(osp.join(task.work_dir, 'train_cost.json'), {})
    model = runner.model
    return dict(
        detector=DETECTOR_NAMES[det], method=cfg.experiment['method'],
        key=method, shots=0 if cfg.evaluate_only else shots,
        seed='' if cfg.evaluate_only else seed, **pick_metrics(metrics),
        trainable=0 if cfg.evaluate_only else sum(
            p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
        step_time_s=cost.get('step_time_s'),
        wall_s=round(time.time() - start, 1))


# ---- driver side ---------------------------------------------------------
def prepare_data(root: str, shots_list: Sequence[int],
                 seeds: Sequence[int]) -> None:
    """The corpus and its target domain's k x seed splits (once)."""
    import contextlib
    from ..datasets.few_shot import run_protocol
    from ..datasets.synthetic.corpus import make_synthetic_corpus
    make_synthetic_corpus(root)
    ann = osp.join(root, 'target', 'annotations', 'instances_train.json')
    missing = [(k, s) for k in shots_list for s in seeds if not osp.exists(
        osp.join(osp.dirname(ann), f'instances_train_{k}shot_seed{s}.json'))]
    if missing:
        with contextlib.redirect_stdout(io.StringIO()):
            status, _ = run_protocol(ann, shots_list, seeds)
        if status:
            raise RuntimeError(f'few-shot splits of {ann} failed')


def make_tasks(detectors: Sequence[str], methods: Sequence[str],
               shots_list: Sequence[int], seeds: Sequence[int], iters: int,
               pretrain_iters: Dict[str, int], root: str, work_root: str
               ) -> List[GridTask]:
    """Pretrain tasks for the bases not cached, then every transfer run
    (each after its detector's base)."""
    tasks = []
    for det in detectors:
        base = base_file(root, det)
        meta = osp.splitext(base)[0] + '.json'
        if not osp.exists(base) and osp.exists(meta):
            os.remove(meta)  # the base was deleted: pretrain it again
        tasks.append(GridTask(
            name=f'{det} base', work_dir=osp.join(work_root, 'pretrain', det),
            function=f'{__name__}:pretrain', result_file=meta,
            args=dict(det=det, root=root, iters=pretrain_iters[det])))
    # Grounding DINO's base pretrains faster: its runs queue first so a
    # worker that finishes early does not wait for GLIP's base.
    for det in sorted(detectors, key=lambda d: d != 'gdino'):
        for method in methods:
            zero = method == 'zero_shot'
            for k in (shots_list[:1] if zero else shots_list):
                for seed in (seeds[:1] if zero else seeds):
                    name = 'zero_shot' if zero else f'{method}_{k}shot_seed{seed}'
                    tasks.append(GridTask(
                        name=f'{det} {name}',
                        work_dir=osp.join(work_root, det, name),
                        function=f'{__name__}:tune_and_evaluate',
                        result_file=osp.join(work_root, det, name, METRICS),
                        after=(f'{det} base', ),
                        args=dict(det=det, method=method, shots=k, seed=seed,
                                  iters=iters, root=root)))
    return tasks


def is_pretrain(task: GridTask) -> bool:
    return task.function == f'{__name__}:pretrain'


def sort_rows(rows: List[Dict]) -> List[Dict]:
    order = {m: i for i, m in enumerate(zoo_methods())}
    return sorted(rows, key=lambda r: (r['detector'], order.get(
        r['key'], len(order)), r['key'], r['shots'], str(r['seed'])))


def _cell(values) -> str:
    mean, std, _ = mean_std(values)
    return format_mean_std(mean, std)


def write_report(rows: List[Dict], shots_list: Sequence[int], out_dir: str,
                 pretrain_meta: Dict[str, Dict]) -> str:
    """``transfer.md``, ``transfer.csv`` and the plot; returns the markdown."""
    lines = []
    for det_name in dict.fromkeys(r['detector'] for r in rows):
        group = [r for r in rows if r['detector'] == det_name]
        meta = pretrain_meta.get(det_name) or {}
        src = (meta.get('source_val') or {}).get('AP')
        lines.append(f'**{det_name}**' + (
            f' (base: {meta.get("iters")} pretraining iterations, source-'
            f'domain val AP {src:.3f})' if src is not None else ''))
        lines.append('')
        header = ('| method | trainable params | ' + ' | '.join(
            f'AP, k={k}' for k in shots_list) + ' | ' + ' | '.join(
            f'AP50, k={k}' for k in shots_list) + ' |')
        lines += [header, '|' + '---|' * (header.count('|') - 1)]
        for method in dict.fromkeys(r['method'] for r in group):
            mine = [r for r in group if r['method'] == method]
            zero = all(r['shots'] == 0 for r in mine)
            cells = [_cell([r[metric] for r in mine
                            if zero or r['shots'] == k])
                     for metric in ('AP', 'AP50') for k in shots_list]
            lines.append(f"| {method} | {int(mine[0]['trainable']):,} | "
                         + ' | '.join(cells) + ' |')
        lines.append('')
    markdown = '\n'.join(lines)
    atomic_write_text(osp.join(out_dir, 'transfer.md'), markdown)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(osp.join(out_dir, 'transfer.csv'), out.getvalue())
    panels = {}
    for det_name in dict.fromkeys(r['detector'] for r in rows):
        points = []
        group = [r for r in rows if r['detector'] == det_name]
        for key in dict.fromkeys(r['key'] for r in group):
            for k in sorted({r['shots'] for r in group if r['key'] == key}):
                mine = [r for r in group if r['key'] == key
                        and r['shots'] == k]
                mean, std, _ = mean_std([r['AP'] for r in mine])
                points.append(dict(
                    label=mine[0]['method'],
                    series='zero-shot' if k == 0 else f'k={k}',
                    trainable=mine[0]['trainable'], AP=mean, AP_std=std))
        panels[det_name] = points
    plot_ap_vs_trainable(panels, osp.join(out_dir,
                                          'ap_vs_trainable_params.png'),
                         ylabel='AP on the target domain')
    return markdown


def pretrain_meta(root: str, detectors: Sequence[str]) -> Dict[str, Dict]:
    """``{detector name: the cached base's .json}``."""
    out = {}
    for det in detectors:
        meta = read_json(osp.splitext(base_file(root, det))[0] + '.json')
        if meta is not None:
            out[DETECTOR_NAMES[det]] = meta
    return out


__all__ = ['DETECTORS', 'DEFAULT_PRETRAIN_ITERS', 'apply_method',
           'make_tasks', 'prepare_data', 'write_report', 'pretrain_meta',
           'sort_rows', 'is_pretrain', 'transfer_config', 'pretrain_config', 'base_file']
