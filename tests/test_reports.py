"""Evaluation reports (projects/sdpt/evaluation/reports.py: per-class AP
table and chart, results JSON, drawn detections), written by
tools/test.py --report, and the aggregation across seeds of such a report
(the aggregation itself: test_seed_aggregation.py)."""
import json
import os.path as osp

import pytest
from helpers import REPO_ROOT, run
from PIL import Image
from pycocotools.coco import COCO

from projects.sdpt.evaluation.reports import write_report


def test_write_report_files(tmp_path):
    metrics = {'coco/cat_precision': 0.5, 'coco/dog_precision': float('nan'),
               'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.4}
    setting = dict(benchmark='odinw13', dataset='X', shots=3, seed=30,
                   name='X/3shot_seed30')
    report = write_report(str(tmp_path), metrics, ['cat', 'dog'], setting,
                          extra=dict(phase='test'))
    assert report['per_class_ap'] == {'cat': 0.5, 'dog': None}
    saved = json.loads((tmp_path / 'metrics.json').read_text())
    assert saved['per_class_ap'] == {'cat': 0.5, 'dog': None}
    assert saved['metrics']['coco/dog_precision'] is None  # NaN -> null
    assert saved['setting']['seed'] == 30 and saved['phase'] == 'test'
    table = (tmp_path / 'per_class_ap.md').read_text()
    assert '| cat | 50.0 |' in table and '| dog | n/a |' in table
    assert 'X/3shot_seed30' in table
    with Image.open(tmp_path / 'per_class_ap.png') as im:
        assert im.format == 'PNG' and im.size[0] > 100


ZERO_SHOT_GLIP = osp.join(REPO_ROOT,
                          'configs/demo/zoo/zero_shot_glip_tiny_demo.py')


@pytest.fixture(scope='module')
def reported(workspace):
    """tools/test.py --report on the tiny GLIP (zero-shot: the base weights
    alone are a valid checkpoint), the demo data given as a custom benchmark
    (1-shot, seed 3)."""
    log = run(
        'test.py', ZERO_SHOT_GLIP, '--report',
        '--cfg-options', 'benchmark=custom', 'data_root=data/demo/shapes/',
        'train_ann=annotations/instances_train.json', 'train_img=train/',
        'val_ann=annotations/instances_val.json', 'val_img=val/',
        'classes=[circle,square,triangle]', 'shots=1', 'seed=3',
        cwd=workspace).out  # exits 0
    work_dir = workspace / 'work_dirs' / 'zero_shot_glip_tiny_demo' / \
        '1shot_seed3'
    return work_dir, log


@pytest.mark.slow
def test_report_of_a_test_run(reported, demo_root):
    work_dir, log = reported
    out = work_dir / 'report' / 'test'
    data = json.loads((out / 'metrics.json').read_text())
    classes = ['circle', 'square', 'triangle']
    assert list(data['per_class_ap']) == classes
    # the per-class AP is CocoMetric's classwise table, as logged
    for name in classes:
        ap = data['per_class_ap'][name]
        assert ap is not None and 0 <= ap <= 1
        assert f'coco/{name}_precision: {ap:.4f}' in log
    assert f'coco/bbox_mAP: {data["metrics"]["coco/bbox_mAP"]:.4f}' in log
    assert data['setting']['name'] == '1shot_seed3'
    assert data['setting']['classes'] == classes
    table = (out / 'per_class_ap.md').read_text()
    assert all(f'| {n} |' in table for n in classes)
    with Image.open(out / 'per_class_ap.png') as im:
        assert im.format == 'PNG'
    # detections in COCO results format, loadable against the GT
    shapes = demo_root / 'data' / 'demo' / 'shapes' / 'annotations'
    gt = COCO(str(shapes / 'instances_val.json'))
    dets = gt.loadRes(str(out / 'results.bbox.json'))
    assert len(dets.getAnnIds()) > 0
    assert set(dets.getImgIds()) <= set(gt.getImgIds())
    # the first 8 test images drawn by mmdet's visualizer
    drawn = sorted((out / 'detections').iterdir())
    assert len(drawn) == 8
    with Image.open(drawn[0]) as im:
        assert im.size == (128, 128)


@pytest.mark.slow
def test_aggregate_a_real_report(reported, tmp_path):
    work_dir, _ = reported
    root = work_dir.parent  # work_dirs/zero_shot_glip_tiny_demo
    out = run('aggregate_seeds.py', root, '--out', tmp_path).out  # exits 0
    agg = json.loads((tmp_path / 'aggregate.json').read_text())
    assert agg['metric'] == 'coco/bbox_mAP'
    (row, ) = agg['rows']
    mAP = json.loads((work_dir / 'report' / 'test' / 'metrics.json')
                     .read_text())['metrics']['coco/bbox_mAP']
    assert row['shots'] == 1 and row['seeds'] == [3]
    assert row['metrics']['coco/bbox_mAP'] == dict(mean=mAP, std=None, n=1)
    assert f'| {100 * mAP:.1f} |' in out
