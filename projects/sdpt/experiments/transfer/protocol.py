"""The learning-rate rules of the transfer suite's protocol (pure functions
of result rows): the grid a method is tried at, the learning rate selected
on dev, and when the grid goes one step past its end.

A result row is a dict with ``lr`` (``''`` or None: not a tuned run) and
``dev_AP``.
"""
import math
from typing import Dict, List, Optional, Sequence

DEFAULT_SHOTS = (1, 10)
DEFAULT_SEEDS = (3, 30, 300)
DEFAULT_LR_FACTORS = (0.1, 1.0, 10.0)
DEFAULT_ITERS = 200
DEFAULT_LR_EDGE_STEPS = 2
#: Learning-rate schedules of a run: ``constant``, or ``cosine`` (a linear
#: warm-up over the first ``WARMUP_FRACTION`` of the iterations, then cosine
#: to zero), the same for every method.
SCHEDULES = ('constant', 'cosine')
DEFAULT_SCHEDULE = 'constant'
WARMUP_FRACTION = 0.1
#: dev APs all within this of each other: the grid cannot choose
FLAT_DEV_AP = 0.01


def lr_grid(recipe: float, factors: Sequence[float]) -> List[float]:
    """The learning rates tried: ``recipe`` times each factor, to three
    significant digits."""
    return [float(f'{recipe * f:.3g}') for f in factors]


def log_step(lrs: Sequence[float]) -> float:
    """The grid's log step, e.g. 10 for factors 0.1 1 10 (two or more
    learning rates)."""
    return (max(lrs) / min(lrs))**(1 / (len(lrs) - 1))


def _tuned(rows: Sequence[Dict]) -> List[Dict]:
    return [r for r in rows if r.get('lr') not in (None, '')]


def select_lr(rows: Sequence[Dict], recipe: float) -> Optional[float]:
    """The lr of the best dev AP; ties go to the one nearest the recipe."""
    rows = _tuned(rows)
    if not rows:
        return None

    def distance(lr: float) -> float:  # lr 0: the method as initialised
        return abs(math.log10(lr / recipe)) if lr > 0 else math.inf

    best = max(rows, key=lambda r: (
        r.get('dev_AP') if r.get('dev_AP') is not None else -1.0,
        -distance(float(r['lr']))))
    return float(best['lr'])


def next_edge_lr(rows: Sequence[Dict], recipe: float,
                 step: float) -> Optional[float]:
    """The learning rate one ``step`` past the end of the ones tried (in
    ``rows``) where the best dev AP sits, or None when it sits inside."""
    rows = _tuned(rows)
    lrs = sorted({float(r['lr']) for r in rows})
    chosen = select_lr(rows, recipe)
    if chosen is None or len(lrs) < 2:
        return None
    if chosen == lrs[0] and not is_flat(rows):
        return float(f'{chosen / step:.3g}')
    if chosen == lrs[-1] or is_flat(rows):
        return float(f'{lrs[-1] * step:.3g}')
    return None


def is_flat(rows: Sequence[Dict]) -> bool:
    """Whether the dev APs of ``rows`` (two or more) are all within
    ``FLAT_DEV_AP`` of each other."""
    dev = [r.get('dev_AP') for r in rows]
    if len(dev) < 2 or None in dev:
        return False
    return max(dev) - min(dev) <= FLAT_DEV_AP + 1e-9


def lr_schedule(schedule: str, iters: int) -> List[Dict]:
    """mmengine ``param_scheduler`` of ``schedule`` over ``iters``."""
    if schedule == 'constant':
        return [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    if schedule != 'cosine':
        raise ValueError(f'schedule {schedule!r}: choose one of '
                         f'{", ".join(SCHEDULES)}')
    warmup = max(1, round(iters * WARMUP_FRACTION))
    return [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
             end=warmup),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup,
             end=iters, T_max=iters - warmup, eta_min=0.0),
    ]

