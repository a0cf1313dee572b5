"""Aggregation across seeds (projects/sdpt/evaluation/seed_aggregation.py)
and its command line, tools/aggregate_seeds.py."""
import json
import math
import statistics

import pytest
from helpers import run

from projects.sdpt.evaluation.seed_aggregation import (
    AggregationError,
    aggregate,
    find_runs,
    pick_metric,
    table,
    write_aggregate,
)


def _fake_run(root, experiment, dataset, shots, seed, mAP, per_class,
              bench='odinw13'):
    name = (f'{dataset}/' if dataset else '') + f'{shots}shot_seed{seed}'
    out = root / experiment / name / 'report' / 'test'
    out.mkdir(parents=True)
    metrics = {'coco/bbox_mAP': mAP}
    metrics.update({f'coco/{c}_precision': v for c, v in per_class.items()})
    (out / 'metrics.json').write_text(json.dumps(dict(
        metrics=metrics, per_class_ap=per_class,
        setting=dict(benchmark=bench, dataset=dataset, shots=shots,
                     seed=seed, name=name))))


def _aggregate(*roots, metric=None):
    runs = find_runs([str(r) for r in roots], 'test', metric)
    metric = pick_metric(runs, metric)
    return runs, aggregate(runs, metric), metric


def test_mean_std_over_seeds(tmp_path):
    root = tmp_path / 'work_dirs'
    values = {('A', 3): 0.30, ('A', 30): 0.40, ('A', 300): 0.50,
              ('B', 3): 0.10, ('B', 30): 0.20, ('B', 300): 0.60}
    for (ds, seed), v in values.items():
        _fake_run(root, 'sdpt_glip_odinw13', ds, 5, seed, v,
                  {'x': v / 2, 'y': None})
    # a run with mmengine's log only (no report): found by its directory
    log_dir = root / 'sdpt_glip_coco_1shot' / '1shot_seed3' / \
        '20240101_000000'
    log_dir.mkdir(parents=True)
    (log_dir / '20240101_000000.json').write_text(
        json.dumps({'coco/bbox_mAP': 0.123, 'step': 4}) + '\n')
    runs, rows, metric = _aggregate(root)
    assert metric == 'coco/bbox_mAP'
    json_path, md_path = write_aggregate(str(root), runs, rows, metric)
    agg = json.loads(open(json_path).read())
    assert agg['metric'] == metric and len(agg['runs']) == 7
    rows = {(r['experiment'], r['dataset'], r['shots']): r
            for r in agg['rows']}
    a = rows[('sdpt_glip_odinw13', 'A', 5)]
    assert a['seeds'] == [3, 30, 300]
    m = a['metrics']['coco/bbox_mAP']
    assert math.isclose(m['mean'], 0.4)
    assert math.isclose(m['std'], statistics.stdev([0.3, 0.4, 0.5]))
    assert math.isclose(a['per_class_ap']['x']['mean'], 0.2)
    assert a['per_class_ap']['y'] == dict(mean=None, std=None, n=0)
    avg = [r for r in agg['rows']
           if (r['dataset'] or '').startswith('ODinW13')]
    assert len(avg) == 1 and '(2 of 13 datasets)' in avg[0]['dataset']
    per_seed = [(0.3 + 0.1) / 2, (0.4 + 0.2) / 2, (0.5 + 0.6) / 2]
    m = avg[0]['metrics']['coco/bbox_mAP']
    assert math.isclose(m['mean'], (0.4 + 0.3) / 2)
    assert math.isclose(m['std'], statistics.stdev(per_seed))
    coco = rows[('sdpt_glip_coco_1shot', None, 1)]
    assert coco['metrics']['coco/bbox_mAP'] == dict(mean=0.123, std=None,
                                                    n=1)
    text = table(agg['rows'], metric)
    assert '| sdpt_glip_odinw13 | A | 5 | 3, 30, 300 | 40.0 ± 10.0 |' in text
    # one seed: no spread to show
    assert '| sdpt_glip_coco_1shot | - | 1 | 3 | 12.3 |' in text
    assert open(md_path).read() == \
        '# coco/bbox_mAP: mean ± std over seeds\n\n' + text


def test_nan_runs_are_dropped_not_zero(tmp_path):
    for seed, v in ((3, 0.2), (30, float('nan')), (300, 0.4)):
        _fake_run(tmp_path, 'exp', 'A', 1, seed, v, {})
    _, rows, _ = _aggregate(tmp_path)
    m = rows[0]['metrics']['coco/bbox_mAP']
    assert math.isclose(m['mean'], 0.3) and m['n'] == 2


def test_metric_choice(tmp_path):
    lvis = dict(metrics={'lvis/bbox_AP': 0.1, 'lvis/bbox_AP50': 0.2},
                source='x')
    assert pick_metric([lvis]) == 'lvis/bbox_AP'
    assert pick_metric([lvis], 'lvis/bbox_AP50') == 'lvis/bbox_AP50'
    with pytest.raises(AggregationError, match='--metric'):
        pick_metric([dict(metrics={'loss': 1.0}, source='x')])


def test_refuses_duplicates_and_missing_dirs(tmp_path):
    _fake_run(tmp_path / 'a', 'exp', 'A', 1, 3, 0.1, {})
    _fake_run(tmp_path / 'b', 'exp', 'A', 1, 3, 0.2, {})
    with pytest.raises(AggregationError, match='twice'):
        _aggregate(tmp_path / 'a', tmp_path / 'b')
    with pytest.raises(AggregationError, match='Not a directory'):
        find_runs([str(tmp_path / 'nowhere')])


@pytest.mark.slow
def test_cli(tmp_path):
    res = run('aggregate_seeds.py', tmp_path, ok=False, timeout=120)
    code, out = res.code, res.out
    assert code != 0 and 'No runs found' in out and 'Traceback' not in out
    _fake_run(tmp_path / 'runs', 'exp', 'A', 1, 3, 0.1, {})
    _fake_run(tmp_path / 'runs', 'exp', 'A', 1, 30, 0.3, {})
    res = run('aggregate_seeds.py', tmp_path / 'runs', '--out',
              tmp_path / 'out', ok=False, timeout=120)
    code, out = res.code, res.out
    assert code == 0, out
    assert '| exp | A | 1 | 3, 30 | 20.0 ± 14.1 |' in out
    assert (tmp_path / 'out' / 'aggregate.md').exists()
    agg = json.loads((tmp_path / 'out' / 'aggregate.json').read_text())
    assert agg['rows'][0]['seeds'] == [3, 30]
