"""The tiny GLIP / Grounding DINO bases of the transfer suite.

A base is a detector trained from random weights on the synthetic corpus's
source domain (``configs/transfer/pretrain_<det>_tiny_synthetic.py``, every
parameter trains). The project ships the bases it reports on in
``checkpoints/synthetic/`` (fp16, at most 30 MB each), so that every machine
tunes from the very same weights: CPU float results depend on the
instruction set and the thread count, so retraining elsewhere gives a close,
not an equal, base.

Pretraining is deterministic for a seed, a thread count and a machine
(``randomness.deterministic``, a fixed torch thread count, an in-process
data loader). It validates on the source val split ``val_points`` times and
records the curve, so that a plateau can be checked: ``plateau`` is the AP
gain over the last quarter of the schedule.
"""
import hashlib
import os.path as osp
import time
from typing import Dict

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from ..evaluation.statistics import pick_metrics
from ..utils.io import atomic_torch_save, read_json
from ..utils.paths import REPO_ROOT
from .grid import GridTask, function_name
from .transfer.configs import set_corpus_root

SHIPPED_DIR = osp.join(REPO_ROOT, 'checkpoints', 'synthetic')
DEFAULT_PRETRAIN_ITERS = {'glip': 4000, 'gdino': 6000}
PRETRAIN_THREADS = 1
VAL_POINTS = 8


def pretrain_config(det: str) -> str:
    return osp.join(REPO_ROOT, 'configs', 'transfer',
                    f'pretrain_{det}_tiny_synthetic.py')


def shipped_base(det: str) -> str:
    return osp.join(SHIPPED_DIR, f'{det}_tiny_synthetic_base.pth')


def base_meta_file(base: str) -> str:
    return osp.splitext(base)[0] + '.json'


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


class ValCurveHook(Hook):
    """Collects ``{iter, AP}`` after every validation of a runner."""
    priority = 'LOWEST'

    def __init__(self):
        self.points = []

    def after_val_epoch(self, runner, metrics=None):
        ap = pick_metrics(metrics or {}).get('AP')
        if ap is not None:
            self.points.append(dict(iter=runner.iter, AP=ap))


def pretrain(task: GridTask) -> Dict:
    """Train one base on the source domain; write it (fp16) to
    ``task.args['out']`` with its ``.json`` (grid task)."""
    a = task.args
    det, iters, out = a['det'], a['iters'], a['out']
    threads = a.get('threads', PRETRAIN_THREADS)
    torch.set_num_threads(threads)
    start = time.time()
    cfg = Config.fromfile(pretrain_config(det))
    set_corpus_root(cfg, a['root'])
    interval = max(1, iters // a.get('val_points', VAL_POINTS))
    cfg.merge_from_dict({
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': interval,
        'default_hooks.checkpoint.interval': iters})
    # The config's schedule (linear warm-up, cosine) scaled to ``iters``.
    warmup = max(1, min(50, iters // 10))
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=warmup),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup,
             end=max(iters, warmup + 1), eta_min_ratio=0.05)
    ]
    cfg.work_dir = task.work_dir
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=a.get('seed', 0), deterministic=True)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='ProgressHook', label=task.name)]
    runner = Runner.from_cfg(cfg)
    curve = ValCurveHook()
    runner.register_hook(curve)
    runner.train()
    metrics = runner.test()
    detector = getattr(runner.model, 'detector', runner.model)
    # fp16 halves the file; loading copies it into the fp32 parameters, so
    # every run, here or on another machine, starts from these values.
    state = {k: v.half() if v.is_floating_point() else v
             for k, v in detector.state_dict().items()}
    atomic_torch_save({'state_dict': state, 'meta': {}}, out)
    tail = [p['AP'] for p in curve.points if p['iter'] >= 0.75 * iters]
    return dict(
        corpus='projects/sdpt/datasets/synthetic/corpus.py (source domain)',
        config=osp.relpath(pretrain_config(det), REPO_ROOT), iters=iters,
        seed=a.get('seed', 0), threads=threads,
        torch=torch.__version__, source_val=pick_metrics(metrics),
        val_curve=curve.points,
        plateau=round(tail[-1] - tail[0], 3) if len(tail) > 1 else None,
        sha256=file_sha256(out), train_s=round(time.time() - start, 1))


def pretrain_task(det: str, root: str, work_root: str, iters: int,
                  out: str) -> GridTask:
    return GridTask(
        name=f'{det} base', work_dir=osp.join(work_root, 'pretrain', det),
        function=function_name(pretrain), result_file=base_meta_file(out),
        args=dict(det=det, root=root, iters=iters, out=out))


def base_info(base: str) -> Dict:
    return read_json(base_meta_file(base)) or {}
