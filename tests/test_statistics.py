"""The statistics of every experiment table
(projects/sdpt/evaluation/statistics.py): mean ± std, confidence intervals
of a mean and of a paired difference, and the metric picker."""
import statistics

import pytest

from projects.sdpt.evaluation.statistics import (
    Interval,
    compare_verdict,
    find_metric_key,
    format_mean_std,
    mean_ci,
    mean_std,
    paired_difference,
    pick_metrics,
)
from projects.sdpt.experiments.results import ap_points


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


def test_mean_ci_is_students_t_interval():
    values = [0.70, 0.74, 0.69, 0.78, 0.72]
    interval = mean_ci(values)
    # t(0.975, 4) = 2.7764451 (tables)
    half = 2.7764451 * statistics.stdev(values) / len(values)**0.5
    assert interval.mean == pytest.approx(statistics.mean(values))
    assert interval.half == pytest.approx(half, rel=1e-6)
    assert interval.n == 5
    assert mean_ci([0.5, float('nan'), None]) == Interval(0.5, None, 1)
    assert mean_ci([]).format() == '–'
    assert Interval(0.5, None, 1).format() == '0.500 (n=1)'
    assert Interval(0.72, 0.031, 5).format() == '0.720 ± 0.031 (n=5)'


def test_paired_difference_uses_the_common_seeds_only():
    a = {3: 0.80, 30: 0.75, 300: 0.82, 7: 0.9}
    b = {3: 0.70, 30: 0.70, 300: 0.71, 8: 0.1}
    diff = paired_difference(a, b)
    assert diff.n == 3
    assert diff.mean == pytest.approx((0.10 + 0.05 + 0.11) / 3)
    assert diff.excludes_zero() and compare_verdict(diff) == 'higher'
    assert compare_verdict(paired_difference(b, a)) == 'lower'
    noisy = paired_difference({1: 0.8, 2: 0.6, 3: 0.75},
                              {1: 0.7, 2: 0.7, 3: 0.7})
    assert not noisy.excludes_zero()
    assert compare_verdict(noisy) == 'no detectable difference'
    assert compare_verdict(paired_difference({1: 0.8}, {1: 0.7})) == \
        'too few paired seeds'


def test_plot_points_carry_the_std_or_the_95_percent_interval():
    entries = [dict(method='SDPT', trainable=10, AP=0.5, AP_std=0.1, runs=5),
               dict(method='zero-shot', trainable=0, AP=0.1, AP_std=None,
                    runs=1)]
    std, ci = (ap_points(entries, lambda e: 'k=10', error=e)
               for e in ('std', 'ci'))
    assert std[0]['AP_error'] == 0.1
    # t(0.975, 4) = 2.7764
    assert ci[0]['AP_error'] == pytest.approx(2.7764 * 0.1 / 5**0.5,
                                              rel=1e-4)
    assert std[1]['AP_error'] is None and ci[1]['AP_error'] is None
    with pytest.raises(ValueError, match="'std' or 'ci'"):
        ap_points(entries, lambda e: 'k=10', error='sem')
