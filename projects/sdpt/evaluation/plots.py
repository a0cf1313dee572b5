"""The project's plots (matplotlib, Agg backend): AP against trainable
parameters for experiment tables, and per-class AP bars for reports."""
import io
import os.path as osp
from typing import Dict, List, Tuple

import matplotlib
import matplotlib.pyplot as plt

from ..utils.io import atomic_write


def _pyplot():
    """pyplot on the Agg backend: plots are files, never windows."""
    matplotlib.use('Agg')
    return plt


def _save(fig, path: str, dpi: int) -> None:
    """``fig`` to ``path`` (its format from the extension), atomically: a
    report's reader never sees half a plot; then closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi,
                format=osp.splitext(path)[1].lstrip('.') or 'png')
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


#: Up to this many methods in a panel are named beside their points; more
#: would overlap, so they are numbered and named in a key beside the axes.
MAX_NAMED_POINTS = 8


def point_names(keys: List[Tuple[str, int]],
                max_named: int = MAX_NAMED_POINTS
                ) -> Tuple[Dict[Tuple[str, int], str], List[str]]:
    """What to write beside each ``(label, trainable)`` point, and the key.

    Few points: their labels and no key. More than ``max_named``: numbers
    in order of trainable parameters (left to right on the plot) and key
    lines ``'<n>  <label>'``.
    """
    if len(keys) <= max_named:
        return {key: key[0] for key in keys}, []
    ordered = sorted(keys, key=lambda key: (key[1], key[0]))
    names = {key: str(i) for i, key in enumerate(ordered, 1)}
    return names, [f'{names[key]}  {key[0]}' for key in ordered]


def plot_ap_vs_trainable(panels: Dict[str, List[Dict]], out_file: str,
                         ylabel: str = 'AP') -> str:
    """One axes per panel, AP against trainable parameters (log scale).

    ``panels``: ``{title: [point, ...]}``, a point being a dict with
    ``label`` (the method), ``series`` (a colour and a legend entry, e.g. the
    detector or k), ``trainable``, ``AP`` and optionally ``AP_error`` (the
    half-length of its error bar; ``ylabel`` says what it is). Points that
    train nothing (zero-shot) cannot sit on a log axis: they are drawn as a
    dashed horizontal line. Each (label, trainable) is
    named once, at its highest point (numbered, with a key beside the axes,
    when there are more than ``MAX_NAMED_POINTS``).
    """
    plt = _pyplot()
    crowded = any(
        len({(p['label'], p['trainable']) for p in points
             if p['trainable'] and p.get('AP') is not None}) >
        MAX_NAMED_POINTS for points in panels.values())
    width = 6.5 + (3.0 if crowded else 0.0)
    fig, axes = plt.subplots(1, len(panels),
                             figsize=(width * len(panels), 4.5),
                             squeeze=False)
    for ax, (title, points) in zip(axes[0], panels.items()):
        draw_ap_panel(ax, title, points, ylabel)
    fig.tight_layout()
    _save(fig, out_file, dpi=120)
    return out_file


def draw_ap_panel(ax, title: str, points: List[Dict],
                  ylabel: str = 'AP') -> None:
    """One panel of :func:`plot_ap_vs_trainable` on ``ax``.

    A panel whose points all train nothing (only zero-shot has finished)
    has no log axis to put them on: it shows their lines on AP from 0 to 1
    and says that no tuned method has results.
    """
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    points = [p for p in points if p.get('AP') is not None]
    series = list(dict.fromkeys(p['series'] for p in points))
    top = {}
    for p in points:
        colour = colours[series.index(p['series']) % len(colours)]
        if not p['trainable']:
            ax.axhline(p['AP'], color=colour, linestyle='--', lw=1)
            ax.annotate(p['label'], (1, p['AP']), ha='right',
                        va='bottom', fontsize=7,
                        xycoords=('axes fraction', 'data'))
            continue
        ax.errorbar(p['trainable'], p['AP'], yerr=p.get('AP_error') or 0,
                    fmt='o', color=colour, capsize=3)
        key = (p['label'], p['trainable'])
        top[key] = max(top.get(key, p['AP']), p['AP'])
    names, key_lines = point_names(list(top))
    for key, ap in top.items():
        ax.annotate(names[key], (key[1], ap),
                    textcoords='offset points', xytext=(4, 4),
                    fontsize=7)
    if key_lines:
        ax.text(1.02, 1.0, '\n'.join(key_lines), transform=ax.transAxes,
                va='top', ha='left', fontsize=7)
    for i, name in enumerate(series):
        # a series of zero-shot lines is keyed by a line, not a point
        trains = any(p['trainable'] for p in points if p['series'] == name)
        ax.plot([], [], 'o' if trains else '--',
                color=colours[i % len(colours)], label=name)
    if top:
        ax.set_xscale('log')
        ax.set_xlabel('trainable parameters (log scale)')
    else:
        ax.set_xticks([])
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, 'no method that trains has results here',
                transform=ax.transAxes, ha='center', va='center',
                fontsize=9, color='grey')
        ax.set_xlabel('trainable parameters')
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if series:
        ax.legend(fontsize=7)


def ap_bar_chart(ap, path, title='per-class AP', max_classes=80):
    """Horizontal bar chart of ``{class: AP}`` written to ``path``.

    With more than ``max_classes`` classes (LVIS), the best and the worst
    ``max_classes // 2`` are drawn and the title says so.
    """
    plt = _pyplot()
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
    _save(fig, path, dpi=100)
    return path
