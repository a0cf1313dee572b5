"""The grid runner (projects/sdpt/experiments/grid.py): task functions run
in spawned workers (they import this module by name), cached results are
read back or rechecked, a failure or a dying worker stays with its task."""
import json
import math
import os

import pytest
from mmengine.logging import MessageHub, MMLogger
from mmengine.visualization import Visualizer

from projects.sdpt.experiments.grid import GridTask, run_grid, run_task

pytestmark = pytest.mark.slow  # each test starts worker processes


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


def runner_like_task(task):
    """What an mmengine Runner leaves in its process: a logger writing to
    the run's log file, a message hub, and a visualizer under the fixed
    name mmdet's runtime gives it."""
    name = f'run-{task.name}'
    logger = MMLogger.get_instance(
        name, log_file=os.path.join(task.work_dir, 'run.log'))
    logger.warning('started')
    MessageHub.get_instance(name).update_scalar('loss', 1.0)
    Visualizer.get_instance(
        'visualizer', vis_backends=[dict(type='LocalVisBackend')],
        save_dir=task.work_dir).add_scalars(dict(loss=1.0))
    return dict(AP=0.5)


def _open_files():
    return {os.path.realpath(f'/proc/self/fd/{fd}')
            for fd in os.listdir('/proc/self/fd')}


def test_a_task_releases_what_its_runners_kept(tmp_path):
    """A worker runs hundreds of tasks: each one's logger (with its log
    file open), message hub and visualizer go when it ends, and the next
    task's visualizer writes in its own folder, not the first one's."""
    outer = MMLogger.get_instance('outside-any-task')
    for name in ('a', 'b'):
        run_task(GridTask(name=name, work_dir=str(tmp_path / name),
                          function=f'{__name__}:runner_like_task'))
        log = str(tmp_path / name / 'run.log')
        assert 'started' in open(log).read()
        assert os.path.realpath(log) not in _open_files()
        assert not MMLogger.check_instance_created(f'run-{name}')
        assert not MessageHub.check_instance_created(f'run-{name}')
        assert not Visualizer.check_instance_created('visualizer')
        # the scalars went to this task's own folder
        assert list((tmp_path / name).glob('vis_data/scalars.json'))
    assert MMLogger.get_current_instance() is outer
