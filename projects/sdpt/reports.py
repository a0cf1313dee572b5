"""Evaluation reports: per-class AP table and chart, results JSON, pictures.

``EvalReportHook`` (mmdet HOOKS) writes, after each test (and validation)
run, into ``<work_dir>/report/<test|val>/``:

- ``metrics.json``: every metric of the run, the per-class AP
  (``{class: AP}``, ``null`` where a class has no ground truth), the
  benchmark setting (``cfg.setting``: dataset, shots, seed) and the
  checkpoint;
- ``per_class_ap.md``: the per-class AP table (markdown);
- ``per_class_ap.png``: a bar chart of the per-class AP (matplotlib, Agg);
- ``results.bbox.json``: the detections in COCO results format (written by
  CocoMetric, whose ``outfile_prefix`` the hook points here when unset);
- ``detections/``: the first ``num_images`` test images with their
  detections drawn by mmdet's visualizer (``DetLocalVisualizer``).

Per-class AP comes from ``CocoMetric(classwise=True)``; the hook turns it on
for the COCO metrics of the run. ``tools/aggregate_seeds.py`` reads
``metrics.json`` across seeds.
"""
import json
import math
import os
import os.path as osp

from mmengine.hooks import Hook
from mmdet.registry import HOOKS


def per_class_ap(metrics, classes):
    """``{class: AP}`` from CocoMetric's ``<prefix>/<class>_precision``."""
    out = {}
    for name in classes:
        for key, value in metrics.items():
            if key.split('/', 1)[-1] == f'{name}_precision':
                out[name] = None if _nan(value) else float(value)
                break
    return out


def _nan(value):
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _jsonable(value):
    if hasattr(value, 'item'):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def ap_table(ap):
    """Markdown table of ``{class: AP}`` (AP in %, "n/a" without GT)."""
    lines = ['| class | AP (%) |', '|---|---:|']
    for name, value in ap.items():
        lines.append(f'| {name} | '
                     + ('n/a' if value is None else f'{100 * value:.1f}')
                     + ' |')
    return '\n'.join(lines) + '\n'


def ap_bar_chart(ap, path, title='per-class AP', max_classes=80):
    """Horizontal bar chart of ``{class: AP}`` written to ``path``.

    With more than ``max_classes`` classes (LVIS), the best and the worst
    ``max_classes // 2`` are drawn and the title says so.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    items = [(n, v) for n, v in ap.items() if v is not None]
    items.sort(key=lambda item: item[1], reverse=True)
    if len(items) > max_classes:
        half = max_classes // 2
        title += f' (best and worst {half} of {len(items)} classes)'
        items = items[:half] + items[-half:]
    names = [n for n, _ in items][::-1]
    values = [100 * v for _, v in items][::-1]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * max(1, len(items))))
    ax.barh(range(len(values)), values, color='tab:blue')
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel('AP (%)')
    ax.set_xlim(0, 100)
    ax.set_title(title, fontsize=10)
    for i, v in enumerate(values):
        ax.text(min(v + 1, 90), i, f'{v:.1f}', va='center', fontsize=7)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(out_dir, metrics, classes, setting=None, extra=None):
    """Write metrics.json, per_class_ap.md and per_class_ap.png."""
    os.makedirs(out_dir, exist_ok=True)
    ap = per_class_ap(metrics, classes)
    report = dict(metrics=_jsonable(dict(metrics)), per_class_ap=ap,
                  setting=_jsonable(setting), **_jsonable(extra or {}))
    with open(osp.join(out_dir, 'metrics.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=1)
    name = (setting or {}).get('name')
    title = 'per-class AP' + (f', {name}' if name else '')
    if ap:
        with open(osp.join(out_dir, 'per_class_ap.md'), 'w',
                  encoding='utf-8') as f:
            f.write(f'# {title}\n\n' + ap_table(ap))
        ap_bar_chart(ap, osp.join(out_dir, 'per_class_ap.png'), title=title)
    return report


@HOOKS.register_module()
class EvalReportHook(Hook):
    """Write the evaluation report of each test / validation run.

    Args:
        num_images (int): test images drawn with their detections.
        score_thr (float): detections drawn above this score.
        on_val (bool): also report validation runs (``report/val``).
    """
    priority = 'LOW'

    def __init__(self, num_images=8, score_thr=0.3, on_val=True):
        self.num_images = num_images
        self.score_thr = score_thr
        self.on_val = on_val
        self._drawn = 0

    def _out_dir(self, runner, phase):
        return osp.join(runner.work_dir, 'report', phase)

    def _prepare(self, runner, evaluator, phase):
        # Per-class AP and a kept results file from every COCO metric.
        for metric in getattr(evaluator, 'metrics', []):
            if hasattr(metric, 'classwise'):
                metric.classwise = True
            if (hasattr(metric, 'outfile_prefix')
                    and getattr(metric, 'outfile_prefix') is None
                    and not getattr(metric, 'format_only', False)):
                metric.outfile_prefix = osp.join(
                    self._out_dir(runner, phase), 'results')
                os.makedirs(self._out_dir(runner, phase), exist_ok=True)

    def before_test(self, runner):
        self._drawn = 0
        self._prepare(runner, runner.test_evaluator, 'test')

    def before_val(self, runner):
        if self.on_val:
            self._prepare(runner, runner.val_evaluator, 'val')

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        if self._drawn >= self.num_images or not outputs or runner.rank:
            return
        import mmcv
        visualizer = runner.visualizer
        out_dir = osp.join(self._out_dir(runner, 'test'), 'detections')
        os.makedirs(out_dir, exist_ok=True)
        for sample in outputs:
            if self._drawn >= self.num_images:
                break
            img = mmcv.imread(sample.img_path, channel_order='rgb')
            name = osp.basename(sample.img_path)
            visualizer.add_datasample(
                name, img, data_sample=sample, draw_gt=False, show=False,
                wait_time=0, pred_score_thr=self.score_thr,
                out_file=osp.join(out_dir, osp.splitext(name)[0] + '.jpg'))
            self._drawn += 1

    def _report(self, runner, metrics, phase, loader):
        if runner.rank != 0 or not metrics:
            return
        dataset = loader.dataset
        classes = list(dataset.metainfo.get('classes', ()))
        extra = dict(phase=phase, checkpoint=runner.cfg.get('load_from'))
        if phase == 'val':  # (runner.iter would build a test-only
            extra['iter'] = runner.iter  # run's train loop)
        write_report(self._out_dir(runner, phase), metrics, classes,
                     setting=runner.cfg.get('setting'), extra=extra)
        runner.logger.info(
            f'Evaluation report written to {self._out_dir(runner, phase)}')

    def after_test_epoch(self, runner, metrics=None):
        self._report(runner, metrics, 'test', runner.test_dataloader)

    def after_val_epoch(self, runner, metrics=None):
        if self.on_val:
            self._report(runner, metrics, 'val', runner.val_dataloader)
