"""``EvalReportHook``: the evaluation report of each test / validation run.

Writes into ``<work_dir>/report/<test|val>/`` what
:func:`projects.sdpt.evaluation.reports.write_report` writes (metrics JSON,
per-class AP table and chart), plus:

- ``results.bbox.json``: the detections in COCO results format (written by
  CocoMetric, whose ``outfile_prefix`` the hook points here when unset);
- ``detections/``: the first ``num_images`` test images with their
  detections drawn by mmdet's visualizer (``DetLocalVisualizer``).

Per-class AP comes from ``CocoMetric(classwise=True)``; the hook turns it on
for the COCO metrics of the run.
"""
import os
import os.path as osp

import mmcv
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ...evaluation.reports import write_report


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
