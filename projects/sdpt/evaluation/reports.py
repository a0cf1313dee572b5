"""Evaluation reports: per-class AP table and chart, metrics JSON.

:func:`write_report` writes into a directory:

- ``metrics.json``: every metric of the run, the per-class AP
  (``{class: AP}``, ``null`` where a class has no ground truth), the
  benchmark setting (``cfg.setting``: dataset, shots, seed) and the
  checkpoint;
- ``per_class_ap.md``: the per-class AP table (markdown);
- ``per_class_ap.png``: a bar chart of the per-class AP (matplotlib, Agg).

``EvalReportHook`` (``engine/hooks/eval_report_hook.py``) calls it after each
test and validation run; ``evaluation/seed_aggregation.py`` reads
``metrics.json`` across seeds.
"""
import math
import os
import os.path as osp

from ..utils.io import atomic_write_json, atomic_write_text
from .plots import ap_bar_chart


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


def write_report(out_dir, metrics, classes, setting=None, extra=None):
    """Write metrics.json, per_class_ap.md and per_class_ap.png."""
    os.makedirs(out_dir, exist_ok=True)
    ap = per_class_ap(metrics, classes)
    report = dict(metrics=_jsonable(dict(metrics)), per_class_ap=ap,
                  setting=_jsonable(setting), **_jsonable(extra or {}))
    atomic_write_json(report, osp.join(out_dir, 'metrics.json'))
    name = (setting or {}).get('name')
    title = 'per-class AP' + (f', {name}' if name else '')
    if ap:
        atomic_write_text(osp.join(out_dir, 'per_class_ap.md'),
                          f'# {title}\n\n' + ap_table(ap))
        ap_bar_chart(ap, osp.join(out_dir, 'per_class_ap.png'), title=title)
    return report
