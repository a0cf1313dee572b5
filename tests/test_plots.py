"""The plots (projects/sdpt/evaluation/plots.py): AP against trainable
parameters, its numbered points and key, the per-class AP bar chart."""
import os

import matplotlib.image
from PIL import Image

from projects.sdpt.evaluation.plots import (
    ap_bar_chart,
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
