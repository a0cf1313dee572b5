"""The statistics of every experiment table
(projects/sdpt/evaluation/statistics.py): mean ± std and the metric
picker."""
import statistics

import pytest

from projects.sdpt.evaluation.statistics import (
    find_metric_key,
    format_mean_std,
    mean_std,
    pick_metrics,
)


def test_mean_std_one_value_has_no_std_and_nan_is_dropped():
    assert mean_std([]) == (None, None, 0)
    assert mean_std([None, float('nan')]) == (None, None, 0)
    assert mean_std([0.25]) == (0.25, None, 1)
    assert mean_std([0.25, float('nan'), None]) == (0.25, None, 1)
    values = [0.1, 0.2, 0.4]
    mean, std, n = mean_std(values + [float('nan')])
    assert n == 3 and mean == pytest.approx(statistics.fmean(values))
    assert std == pytest.approx(statistics.stdev(values))


def test_format_mean_std():
    assert format_mean_std(None) == '–'
    assert format_mean_std(0.2312) == '0.231'
    assert format_mean_std(0.2312, 0.0041) == '0.231 ± 0.004'
    assert format_mean_std(0.2312, 0.0041, 1, scale=100) == '23.1 ± 0.4'


def test_metric_picker_reads_coco_and_lvis_keys():
    coco = {'coco/bbox_mAP': 0.3, 'coco/bbox_mAP_50': 0.5,
            'coco/bbox_mAP_s': 0.1}
    assert pick_metrics(coco) == dict(AP=0.3, AP50=0.5)
    lvis = {'lvis/bbox_AP50': 0.4, 'lvis/bbox_AP': 0.2}
    assert pick_metrics(lvis) == dict(AP=0.2, AP50=0.4)
    assert find_metric_key(['loss'], 'AP') is None
    assert pick_metrics({}) == dict(AP=None, AP50=None)
