"""Pretrain tiny GLIP / Grounding DINO bases, then measure few-shot transfer.

    python tools/transfer_benchmark.py [--detectors glip gdino] \\
        [--methods zero_shot full_ft text visual dpt independent_dual sdpt \\
         sdpt_reference] [--shots 1 3 5 10] [--seeds 3] [--iters 40] \\
        [--pretrain-iters glip=800 gdino=2000] [--workers 2] \\
        [--root data/synthetic] [--work-dir work_dirs/transfer]

1. Writes the synthetic grounding corpus (``projects/sdpt/synthetic_corpus``)
   and the few-shot splits of its target domain (``tools/make_few_shot.py``'s
   protocol names), once.
2. Pretrains each detector from random weights on the source domain
   (``configs/transfer/pretrain_<det>_tiny_synthetic.py``, every parameter
   trains) and caches the detector weights as
   ``ROOT/<det>_tiny_synthetic_base.pth`` (with ``.json`` beside it: the
   pretraining's source-domain AP and time). A cached base is reused; delete
   it to pretrain again.
3. For every detector x method x k x seed, tunes the method on the k-shot
   target split from the base (``configs/transfer/<det>_tiny_synthetic.py``
   with the method of ``configs/demo/zoo/<method>_<det>_tiny_demo.py``:
   prompt, trainable patterns, learning rate) and evaluates on the target val
   split. Zero-shot is evaluated once per detector. Finished runs are skipped.

Runs go to a pool of ``--workers`` processes (``torch`` threads split between
them). Written to WORK_DIR: ``transfer.md`` (one table per detector, AP of
every method at every k), ``transfer.csv`` (one row per run) and
``ap_vs_trainable_params.png``.
"""
import argparse
import csv
import json
import os
import os.path as osp
import statistics
import sys
import time
import traceback

from _common import REPO_ROOT, setup_environment

setup_environment()

DETECTORS = ('glip', 'gdino')
DETECTOR_NAMES = {'glip': 'GLIP (tiny)', 'gdino': 'Grounding DINO (tiny)'}
METHODS = ('zero_shot', 'full_ft', 'text', 'visual', 'dpt',
           'independent_dual', 'sdpt', 'sdpt_reference')
DEFAULT_PRETRAIN_ITERS = {'glip': 800, 'gdino': 2000}
METRICS = 'metrics.json'


def transfer_config(det):
    return osp.join(REPO_ROOT, 'configs', 'transfer',
                    f'{det}_tiny_synthetic.py')


def pretrain_config(det):
    return osp.join(REPO_ROOT, 'configs', 'transfer',
                    f'pretrain_{det}_tiny_synthetic.py')


def method_config(det, method):
    """The demo config whose method (prompt, trainables, lr) a run uses."""
    if method == 'sdpt':
        return osp.join(REPO_ROOT, 'configs', 'demo',
                        f'sdpt_{det}_tiny_demo.py')
    return osp.join(REPO_ROOT, 'configs', 'demo', 'zoo',
                    f'{method}_{det}_tiny_demo.py')


def base_file(root, det):
    return osp.join(root, f'{det}_tiny_synthetic_base.pth')


def apply_method(cfg, det, method):
    """Give ``cfg`` the method of the zoo's demo config for ``method``.

    Zoo configs differ from their base only in these fields (a test checks
    it), so copying them moves the method exactly.
    """
    from mmengine.config import Config
    source = Config.fromfile(method_config(det, method))
    cfg.model.prompt = source.model.get('prompt')
    cfg.model.extra_trainable = source.model.get('extra_trainable', [])
    cfg.optim_wrapper.optimizer.lr = source.optim_wrapper.optimizer.lr
    cfg.evaluate_only = source.get('evaluate_only', False)
    cfg.experiment = dict(cfg.experiment, method=source.experiment['method'])
    return cfg


def _set_root(cfg, root):
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


def _load(path, root, work_dir, cfg_options=None):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    _set_root(cfg, root)
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    return cfg


# ---- worker side ---------------------------------------------------------
def _init_worker(threads, log_file):
    # Workers' output (mmengine, pycocotools, transformers) goes to one log;
    # the driver prints one line per run.
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import torch
    torch.set_num_threads(threads)
    import warnings
    warnings.filterwarnings('ignore')
    from mmdet.utils import register_all_modules
    register_all_modules()
    import projects.sdpt  # noqa: F401


def _runner(cfg):
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _coco(metrics):
    def pick(suffix):
        for key, value in metrics.items():
            if key.endswith(suffix):
                return float(value)
        return None
    return dict(AP=pick('bbox_mAP'), AP50=pick('bbox_mAP_50'))


def _write_json_atomic(obj, path):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def pretrain(task):
    """Train one detector on the source domain; cache its weights."""
    import torch
    det, root, work_root, iters = task
    out = base_file(root, det)
    if osp.exists(out):
        return dict(det=det, cached=True)
    failed = out + '.failed'
    try:
        start = time.time()
        work_dir = osp.join(work_root, 'pretrain', det)
        cfg = _load(pretrain_config(det), root, work_dir, {
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
        meta = dict(
            corpus='projects/sdpt/synthetic_corpus.py (source domain)',
            config=osp.relpath(pretrain_config(det), REPO_ROOT), iters=iters,
            source_val=_coco(metrics), train_s=round(time.time() - start, 1))
        tmp = out + '.tmp'
        torch.save({'state_dict': detector.state_dict(), 'meta': {}}, tmp)
        os.replace(tmp, out)
        _write_json_atomic(meta, osp.splitext(out)[0] + '.json')
        return dict(det=det, cached=False, **meta)
    except Exception:
        with open(failed, 'w') as f:
            f.write(traceback.format_exc())
        raise


def _wait_for_base(root, det):
    out = base_file(root, det)
    failed = out + '.failed'
    while not osp.exists(out):
        if osp.exists(failed):
            raise RuntimeError(f'pretraining of {det} failed: see {failed}')
        time.sleep(2)


def run_transfer(task):
    """Tune one method on one k-shot split and evaluate; returns a row."""
    det, method, shots, seed, iters, root, work_dir = task
    metrics_file = osp.join(work_dir, METRICS)
    if osp.exists(metrics_file):
        with open(metrics_file) as f:
            return json.load(f)
    try:
        _wait_for_base(root, det)
        start = time.time()
        cfg = _load(transfer_config(det), root, work_dir)
        apply_method(cfg, det, method)
        ann = f'annotations/instances_train_{shots}shot_seed{seed}.json'
        cfg.train_dataloader.dataset.ann_file = ann
        cfg.merge_from_dict({
            'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
            'default_hooks.checkpoint.interval': iters,
            'shots': shots, 'seed': seed})
        runner = _runner(cfg)
        if not cfg.evaluate_only:
            runner.train()
        metrics = runner.test()
        cost = {}
        cost_file = osp.join(work_dir, 'train_cost.json')
        if osp.exists(cost_file):
            with open(cost_file) as f:
                cost = json.load(f)
        model = runner.model
        row = dict(
            detector=DETECTOR_NAMES[det], method=cfg.experiment['method'],
            key=method, shots=0 if cfg.evaluate_only else shots,
            seed='' if cfg.evaluate_only else seed, **_coco(metrics),
            trainable=0 if cfg.evaluate_only else _trainable(model),
            total=sum(p.numel() for p in model.parameters()),
            step_time_s=cost.get('step_time_s'),
            wall_s=round(time.time() - start, 1))
        _write_json_atomic(row, metrics_file)
        return row
    except Exception as err:
        os.makedirs(work_dir, exist_ok=True)
        log = osp.join(work_dir, 'error.log')
        with open(log, 'w') as f:
            f.write(traceback.format_exc())
        return dict(detector=DETECTOR_NAMES[det], key=method, shots=shots,
                    seed=seed, error=f'{type(err).__name__}: {err} ({log})')


# ---- report --------------------------------------------------------------
def _cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return '–'
    if len(values) == 1:
        return f'{values[0]:.3f}'
    return f'{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}'


def write_report(rows, shots_list, out_dir, pretrain_meta):
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
            cells = []
            for metric in ('AP', 'AP50'):
                for k in shots_list:
                    cells.append(_cell([
                        r[metric] for r in mine
                        if zero or r['shots'] == k]))
            lines.append(f"| {method} | {int(mine[0]['trainable']):,} | "
                         + ' | '.join(cells) + ' |')
        lines.append('')
    markdown = '\n'.join(lines)
    with open(osp.join(out_dir, 'transfer.md'), 'w') as f:
        f.write(markdown)
    fields = ['detector', 'method', 'key', 'shots', 'seed', 'AP', 'AP50',
              'trainable', 'total', 'step_time_s', 'wall_s']
    with open(osp.join(out_dir, 'transfer.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    return markdown


def plot(rows, shots_list, out_file):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    dets = list(dict.fromkeys(r['detector'] for r in rows))
    fig, axes = plt.subplots(1, len(dets), figsize=(6 * len(dets), 4.5),
                             squeeze=False)
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, det in zip(axes[0], dets):
        group = [r for r in rows if r['detector'] == det]
        for i, k in enumerate(shots_list):
            pts = {}
            for r in group:
                if r['shots'] == k and r['trainable'] and r['AP'] is not None:
                    pts.setdefault((r['method'], r['trainable']),
                                   []).append(r['AP'])
            xs = [t for _, t in pts]
            ys = [statistics.fmean(v) for v in pts.values()]
            ax.plot(xs, ys, 'o', color=colours[i % len(colours)],
                    label=f'k={k}')
        top = {}
        for r in group:
            if r['trainable'] and r['AP'] is not None:
                key = (r['method'], r['trainable'])
                top[key] = max(top.get(key, 0), r['AP'])
        for (method, trainable), ap in top.items():
            ax.annotate(method, (trainable, ap), textcoords='offset points',
                        xytext=(3, 5), fontsize=7, rotation=20)
        for r in group:
            if r['shots'] == 0 and r['AP'] is not None:
                ax.axhline(r['AP'], color='grey', linestyle='--', lw=1,
                           label='zero-shot')
        ax.set_xscale('log')
        ax.set_xlabel('trainable parameters (log scale)')
        ax.set_ylabel('AP on the target domain')
        ax.set_title(det)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_file, dpi=120)
    plt.close(fig)


# ---- driver --------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--detectors', nargs='+', choices=DETECTORS,
                        default=list(DETECTORS))
    parser.add_argument('--methods', nargs='+', choices=METHODS,
                        default=list(METHODS))
    parser.add_argument('--shots', nargs='+', type=int, default=[1, 3, 5, 10])
    parser.add_argument('--seeds', nargs='+', type=int, default=[3],
                        help="few-shot split seeds (the protocol's 3 30 300)")
    parser.add_argument('--iters', type=int, default=40,
                        help='training iterations of every transfer run')
    parser.add_argument('--pretrain-iters', nargs='+', default=[],
                        metavar='DET=N', help='pretraining iterations, '
                        f'default {DEFAULT_PRETRAIN_ITERS}')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--root', default='data/synthetic')
    parser.add_argument('--work-dir', default='work_dirs/transfer')
    return parser.parse_args(argv)


def prepare_data(root, shots_list, seeds):
    import contextlib
    import io
    from make_few_shot import run_protocol
    from projects.sdpt.synthetic_corpus import make_synthetic_corpus
    make_synthetic_corpus(root)
    ann = osp.join(root, 'target', 'annotations', 'instances_train.json')
    missing = [(k, s) for k in shots_list for s in seeds if not osp.exists(
        osp.join(osp.dirname(ann), f'instances_train_{k}shot_seed{s}.json'))]
    if missing:
        with contextlib.redirect_stdout(io.StringIO()):
            status, _ = run_protocol(ann, shots_list, seeds)
        if status:
            raise SystemExit(f'error: few-shot splits of {ann} failed')


def main(argv=None):
    import multiprocessing as mp
    args = parse_args(argv)
    iters = dict(DEFAULT_PRETRAIN_ITERS)
    for item in args.pretrain_iters:
        det, _, n = item.partition('=')
        if det not in DETECTORS or not n.isdigit():
            raise SystemExit(f'error: --pretrain-iters {item!r}: expected '
                             f'DET=N with DET in {DETECTORS}')
        iters[det] = int(n)
    root, work_root = osp.abspath(args.root), osp.abspath(args.work_dir)
    os.makedirs(work_root, exist_ok=True)
    start = time.time()
    prepare_data(root, args.shots, args.seeds)
    for det in args.detectors:  # a failure of an earlier invocation
        if osp.exists(base_file(root, det) + '.failed'):
            os.remove(base_file(root, det) + '.failed')
    pretrain_tasks = [(det, root, work_root, iters[det])
                      for det in args.detectors
                      if not osp.exists(base_file(root, det))]
    runs = []
    # Grounding DINO's base pretrains faster: its runs queue first so a
    # worker that finishes early does not wait for GLIP's base.
    for det in sorted(args.detectors, key=lambda d: d != 'gdino'):
        for method in args.methods:
            for k in ([args.shots[0]] if method == 'zero_shot'
                      else args.shots):
                for seed in (args.seeds[:1] if method == 'zero_shot'
                             else args.seeds):
                    name = ('zero_shot' if method == 'zero_shot' else
                            f'{method}_{k}shot_seed{seed}')
                    runs.append((det, method, k, seed, args.iters, root,
                                 osp.join(work_root, det, name)))
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    ctx = mp.get_context('spawn')
    log_file = osp.join(work_root, 'workers.log')
    print(f'{len(pretrain_tasks)} base(s) to pretrain, {len(runs)} runs, '
          f'{args.workers} workers; their log: {log_file}', flush=True)
    rows, failures = [], []
    with ctx.Pool(args.workers, initializer=_init_worker,
                  initargs=(threads, log_file)) as pool:
        pending = [pool.apply_async(pretrain, (t, )) for t in pretrain_tasks]
        for result in pool.imap_unordered(run_transfer, runs):
            if 'error' in result:
                failures.append(result)
                print(f"FAILED {result['detector']} {result['key']} "
                      f"k={result['shots']}: {result['error']}", flush=True)
                continue
            rows.append(result)
            print(f"{result['detector']:<22} {result['method']:<26} "
                  f"k={result['shots']:<2} AP {_cell([result['AP']])} AP50 "
                  f"{_cell([result['AP50']])} trainable "
                  f"{result['trainable']:,} ({result['wall_s']} s)",
                  flush=True)
        for p in pending:
            p.get()
    pretrain_meta = {}
    for det in args.detectors:
        meta_file = osp.splitext(base_file(root, det))[0] + '.json'
        if osp.exists(meta_file):
            with open(meta_file) as f:
                pretrain_meta[DETECTOR_NAMES[det]] = json.load(f)
    order = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (r['detector'], order[r['key']], r['shots'],
                             str(r['seed'])))
    if rows:
        print(write_report(rows, args.shots, work_root, pretrain_meta))
        plot(rows, args.shots,
             osp.join(work_root, 'ap_vs_trainable_params.png'))
    print(f'{len(rows)} runs, {len(failures)} failed, '
          f'{(time.time() - start) / 60:.1f} min; tables and plot in '
          f'{work_root}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
