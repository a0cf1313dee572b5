"""The statistics every experiment table shares: one metric picker, one
mean ± std, one confidence interval of a mean and of a paired difference.

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
from typing import (
    Dict,
    Iterable,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

from scipy import stats as scipy_stats

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


class Interval(NamedTuple):
    """A mean with its confidence interval: ``mean ± half`` (``half`` None
    from fewer than two values), over ``n`` values."""
    mean: Optional[float]
    half: Optional[float]
    n: int

    @property
    def low(self) -> Optional[float]:
        return None if self.half is None else self.mean - self.half

    @property
    def high(self) -> Optional[float]:
        return None if self.half is None else self.mean + self.half

    def excludes_zero(self) -> bool:
        return self.half is not None and (self.low > 0 or self.high < 0)

    def format(self, digits: int = 3) -> str:
        """``'0.720 ± 0.031 (n=5)'``; ``'0.720 (n=1)'``; ``'–'``."""
        if self.mean is None:
            return '–'
        text = f'{self.mean:.{digits}f}'
        if self.half is not None:
            text += f' ± {self.half:.{digits}f}'
        return f'{text} (n={self.n})'


def mean_ci(values: Iterable, level: float = 0.95) -> Interval:
    """The mean of the numbers in ``values`` (``None`` and NaN dropped, as
    :func:`mean_std`) and the half-width of its ``level`` confidence
    interval from Student's t with n - 1 degrees of freedom."""
    mean, std, n = mean_std(values)
    return Interval(mean, ci_half_width(std, n, level), n)


def ci_half_width(std: Optional[float], n: int,
                  level: float = 0.95) -> Optional[float]:
    """The half-width of the ``level`` confidence interval of a mean of
    ``n`` values with sample std ``std`` (Student's t); None for no std."""
    if std is None or n < 2:
        return None
    t = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1))
    return t * std / math.sqrt(n)


def paired_difference(a: Mapping, b: Mapping,
                      level: float = 0.95) -> Interval:
    """``a - b`` over the keys (seeds) both have a number for: the mean
    difference and its ``level`` confidence interval (a paired t
    interval)."""
    keys = [k for k in a if k in b and _is_number(a[k]) and _is_number(b[k])]
    return mean_ci([float(a[k]) - float(b[k]) for k in keys], level)


def compare_verdict(difference: Interval, digits: int = 3) -> str:
    """What a paired difference allows one to say: higher or lower when its
    interval excludes zero, else no detectable difference."""
    if difference.half is None:
        return 'too few paired seeds'
    if not difference.excludes_zero():
        return 'no detectable difference'
    return 'higher' if difference.mean > 0 else 'lower'


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
