"""The plots (projects/sdpt/evaluation/plots.py): AP against trainable
parameters, its numbered points and key, the per-class AP bar chart."""
import os

import matplotlib.image
from matplotlib.figure import Figure
from PIL import Image

from projects.sdpt.evaluation.plots import (
    ap_bar_chart,
    draw_ap_panel,
    plot_ap_vs_trainable,
    point_names,
)


def test_plot_ap_vs_trainable(tmp_path):
    out = plot_ap_vs_trainable(
        {'GLIP': [dict(label='zero-shot', series='zero-shot', trainable=0,
                       AP=0.1),
                  dict(label='SDPT', series='k=1', trainable=3000, AP=0.2,
                       AP_error=0.01),
                  dict(label='SDPT', series='k=3', trainable=3000, AP=None)],
         'empty': []}, str(tmp_path / 'report' / 'plot.png'))
    assert os.path.getsize(out) > 1000
    # written atomically: the folder made, no temporary file left beside it
    assert os.listdir(tmp_path / 'report') == ['plot.png']
    with Image.open(out) as im:
        assert im.format == 'PNG'


def test_a_panel_of_zero_shot_alone_says_so_instead_of_a_log_axis():
    zero_shot = dict(label='zero-shot', series='zero-shot', trainable=0,
                     AP=0.354)
    ax = Figure().subplots()
    draw_ap_panel(ax, 'GLIP', [zero_shot])
    assert ax.get_xscale() == 'linear' and list(ax.get_xticks()) == []
    assert ax.get_xlabel() == 'trainable parameters'
    assert ax.get_ylim() == (0, 1)
    assert any('no method that trains' in t.get_text() for t in ax.texts)
    # the zero-shot series is keyed by its dashed line, not a point
    [handle] = ax.get_legend().legend_handles
    assert handle.get_linestyle() == '--' and handle.get_marker() == 'None'

    ax = Figure().subplots()
    draw_ap_panel(ax, 'GLIP', [zero_shot, dict(
        label='SDPT', series='k=10', trainable=16384, AP=0.6,
        AP_error=0.02)])
    assert ax.get_xscale() == 'log'
    assert ax.get_xlabel() == 'trainable parameters (log scale)'
    assert not any('no method' in t.get_text() for t in ax.texts)
    markers = [h.get_marker() for h in ax.get_legend().legend_handles]
    assert markers == ['None', 'o']


def test_crowded_plots_number_their_points_and_name_them_in_a_key(tmp_path):
    few = [('SDPT', 300), ('CoOp', 30)]
    assert point_names(few) == ({k: k[0] for k in few}, [])
    many = [(f'method {i}', 10 * (12 - i)) for i in range(12)]
    names, key = point_names(many)
    # numbered from the fewest trainable parameters (the left of the plot)
    assert names[('method 11', 10)] == '1'
    assert names[('method 0', 120)] == '12'
    assert key[0] == '1  method 11' and len(key) == 12
    points = [dict(label=label, series='k=10', trainable=n, AP=0.5)
              for label, n in many]
    sizes = []
    for name, pts in (('few', points[:3]), ('many', points)):
        out = plot_ap_vs_trainable({'panel': pts},
                                   str(tmp_path / f'{name}.png'))
        sizes.append(matplotlib.image.imread(out).shape[1])
    assert sizes[1] > sizes[0]  # room for the key


def test_bar_chart_caps_many_classes(tmp_path):
    ap = {f'c{i}': i / 1300 for i in range(1203)}
    ap_bar_chart(ap, str(tmp_path / 'lvis.png'), max_classes=40)
    with Image.open(tmp_path / 'lvis.png') as im:
        assert im.size[1] < 2000  # 40 bars, not 1203
