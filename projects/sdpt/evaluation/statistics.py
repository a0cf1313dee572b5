"""The statistics every experiment table shares: one metric picker, one
mean ± std.

``mean_std`` decides, for every table of the project:

- ``None`` and NaN values are dropped: a NaN AP means "no ground truth for
  this class / run", not a score of zero; ``n`` counts what is left;
- no value left: ``(None, None, 0)``;
- one value: ``(value, None, 1)``: no spread can be estimated from a single
  run, so the table shows the value without ``±`` (never a made-up 0.000);
- two or more: the mean and the *sample* standard deviation (n - 1), as
  ``statistics.stdev`` computes it.
"""
import math
import statistics
from typing import Dict, Iterable, Optional, Sequence, Tuple

#: COCO-style metric names and the key suffixes they have in mmdet's metrics
#: (CocoMetric: ``coco/bbox_mAP``; LVISMetric: ``lvis/bbox_AP``).
METRIC_SUFFIXES = {
    'AP': ('bbox_mAP', 'bbox_AP', '/AP'),
    'AP50': ('bbox_mAP_50', 'bbox_AP50', '/AP50'),
}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and not math.isnan(value)


def mean_std(values: Iterable) -> Tuple[Optional[float], Optional[float],
                                         int]:
    """``(mean, sample std, n)`` of the numbers in ``values`` (module doc)."""
    numbers = [float(v) for v in values if _is_number(v)]
    if not numbers:
        return None, None, 0
    if len(numbers) == 1:
        return numbers[0], None, 1
    return statistics.fmean(numbers), statistics.stdev(numbers), len(numbers)


def format_mean_std(mean: Optional[float], std: Optional[float] = None,
                    digits: int = 3, scale: float = 1.0) -> str:
    """``'0.231 ± 0.004'``, ``'0.231'`` without a std, ``'–'`` without a
    mean; ``scale=100`` for percent."""
    if mean is None:
        return '–'
    text = f'{scale * mean:.{digits}f}'
    return text if std is None else f'{text} ± {scale * std:.{digits}f}'


def find_metric_key(keys: Sequence[str], metric: str = 'AP') -> Optional[str]:
    """The first key of ``keys`` that holds ``metric`` ('AP' or 'AP50')."""
    for suffix in METRIC_SUFFIXES[metric]:
        for key in keys:
            if key.endswith(suffix):
                return key
    return None


def pick_metrics(metrics: Dict, names: Sequence[str] = ('AP', 'AP50')
                 ) -> Dict[str, Optional[float]]:
    """``{'AP': ..., 'AP50': ...}`` from an evaluator's metrics dict (None
    where the metric is missing)."""
    out = {}
    for name in names:
        key = find_metric_key(list(metrics), name)
        out[name] = None if key is None else float(metrics[key])
    return out
