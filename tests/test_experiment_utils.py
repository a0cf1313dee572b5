"""What every experiment table shares: mean ± std, the metric picker, atomic
files, the AP-vs-parameters plot and the grid runner."""
import json
import math
import os
import stat
import statistics

import pytest

from projects.sdpt.evaluation.plots import (plot_ap_vs_trainable,
                                            point_names)
from projects.sdpt.evaluation.statistics import (find_metric_key,
                                                 format_mean_std, mean_std,
                                                 pick_metrics)
from projects.sdpt.experiments.grid import GridTask, run_grid
from projects.sdpt.utils.io import atomic_write_json, read_json


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


def test_atomic_write_gives_the_file_the_usual_mode(tmp_path):
    path = str(tmp_path / 'm.json')
    old = os.umask(0o022)
    try:
        atomic_write_json(dict(a=1), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_atomic_json_leaves_the_old_file_on_failure(tmp_path):
    path = str(tmp_path / 'sub' / 'result.json')
    atomic_write_json(dict(a=1), path)
    assert read_json(path) == dict(a=1)
    with pytest.raises(TypeError):
        atomic_write_json(dict(a=object()), path)
    assert read_json(path) == dict(a=1)
    assert os.listdir(tmp_path / 'sub') == ['result.json']
    assert read_json(str(tmp_path / 'missing.json'), 'none') == 'none'


def test_plot_ap_vs_trainable(tmp_path):
    out = plot_ap_vs_trainable(
        {'GLIP': [dict(label='zero-shot', series='zero-shot', trainable=0,
                       AP=0.1),
                  dict(label='SDPT', series='k=1', trainable=3000, AP=0.2,
                       AP_std=0.01),
                  dict(label='SDPT', series='k=3', trainable=3000, AP=None)],
         'empty': []}, str(tmp_path / 'plot.png'))
    assert os.path.getsize(out) > 1000


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
    import matplotlib.image
    sizes = []
    for name, pts in (('few', points[:3]), ('many', points)):
        out = plot_ap_vs_trainable({'panel': pts},
                                   str(tmp_path / f'{name}.png'))
        sizes.append(matplotlib.image.imread(out).shape[1])
    assert sizes[1] > sizes[0]  # room for the key


# ---- grid runner: task functions run in spawned workers --------------------
def square(task):
    with open(os.path.join(task.work_dir, 'calls'), 'a') as f:
        f.write('x')
    if task.args['x'] < 0:
        raise ValueError('negative')
    return dict(AP=task.args['x'] ** 2)


def test_grid_runs_skips_and_isolates_failures(tmp_path, capfd):
    def task(name, x, after=()):
        return GridTask(name=name, work_dir=str(tmp_path / name),
                        function=f'{__name__}:square', args=dict(x=x),
                        after=after)

    tasks = [task('a', 0.5), task('bad', -1), task('b', 0.25, ('a', )),
             task('c', 2, ('bad', ))]
    log = str(tmp_path / 'workers.log')
    results, failures = run_grid(tasks, workers=2, log_file=log, threads=1)
    assert results == {'a': dict(AP=0.25, wall_s=results['a']['wall_s']),
                       'b': dict(AP=0.0625, wall_s=results['b']['wall_s'])}
    assert [(t.name, 'negative' in e) for t, e in failures] == [
        ('bad', True), ('c', False)]
    assert 'ValueError: negative' in (tmp_path / 'bad' / 'error.log'
                                      ).read_text()
    assert not (tmp_path / 'c').exists()  # never ran: what it needs failed
    out = capfd.readouterr().out
    assert 'a: AP 0.250' in out and 'left]' in out and 'FAILED bad' in out
    assert json.loads((tmp_path / 'a' / 'result.json').read_text())[
        'AP'] == 0.25

    # Again: finished tasks are read back, only the failed one runs.
    results, failures = run_grid(tasks, workers=1, log_file=log, threads=1)
    assert set(results) == {'a', 'b'} and len(failures) == 2
    assert (tmp_path / 'a' / 'calls').read_text() == 'x'
    assert (tmp_path / 'bad' / 'calls').read_text() == 'xx'
    assert '[cached] a: AP 0.250' in capfd.readouterr().out
    assert math.isfinite(results['a']['wall_s'])


def die(task):
    """A task whose worker process dies (as a crash in native code does)."""
    os._exit(3)


def test_grid_survives_a_dying_worker_and_names_the_task(tmp_path, capfd):
    def task(name, function, x=1.0):
        return GridTask(name=name, work_dir=str(tmp_path / name),
                        function=f'{__name__}:{function}', args=dict(x=x))

    tasks = [task('a', 'square', 2), task('dies', 'die'),
             task('b', 'square', 3), task('c', 'square', 4)]
    results, failures = run_grid(tasks, workers=2, threads=1,
                                 log_file=str(tmp_path / 'workers.log'))
    assert {n: r['AP'] for n, r in results.items()} == {'a': 4, 'b': 9,
                                                        'c': 16}
    assert [t.name for t, _ in failures] == ['dies']
    assert 'worker process died' in failures[0][1]
    assert 'it ran alone' in (tmp_path / 'dies' / 'error.log').read_text()
    assert '[retry] dies' in capfd.readouterr().out


def holds_when_marked(task, cached):
    """A recheck: the cached result holds while the file ``keep`` exists."""
    return os.path.exists(os.path.join(task.work_dir, 'keep'))


def test_grid_reruns_a_cached_result_its_recheck_rejects(tmp_path, capfd):
    def task(name, x, after=(), recheck=None):
        return GridTask(name=name, work_dir=str(tmp_path / name),
                        function=f'{__name__}:square', args=dict(x=x),
                        after=after, recheck=recheck)

    recheck = f'{__name__}:holds_when_marked'
    tasks = [task('a', 2), task('b', 3, ('a', ), recheck)]
    log = str(tmp_path / 'workers.log')
    run_grid(tasks, workers=1, log_file=log, threads=1)
    (tmp_path / 'b' / 'keep').write_text('')
    results, failures = run_grid(tasks, workers=1, log_file=log, threads=1)
    assert not failures and results['b']['AP'] == 9
    assert (tmp_path / 'b' / 'calls').read_text() == 'x'  # held: not rerun
    assert '[cached] b: AP 9' in capfd.readouterr().out
    # the recheck now rejects it: the stale result is deleted and b runs
    (tmp_path / 'b' / 'keep').unlink()
    results, failures = run_grid(tasks, workers=1, log_file=log, threads=1)
    assert not failures and results['b']['AP'] == 9
    assert (tmp_path / 'b' / 'calls').read_text() == 'xx'
    assert (tmp_path / 'a' / 'calls').read_text() == 'x'
    assert '[stale] b' in capfd.readouterr().out
    assert tasks[1].holds(results['b']) is False
    assert tasks[0].holds(results['a']) is True  # no recheck: always
