"""The speed benchmark (projects/sdpt/experiments/speed.py) and its command
line, tools/speed_benchmark.py: the report arithmetic on fake measurements,
one real child in this process and one run of the tool on the tiny GLIP."""
import json
import os.path as osp

import pytest
from helpers import DEMO_CONFIGS, run

from projects.sdpt.experiments import speed


def fake_spawn(calls):
    """A stand-in for the child: 'compare' twice as slow, batch 4 twice as
    fast per image as batch 1."""
    def spawn(spec):
        calls.append(spec)
        slow = 2.0 if spec['config'] == 'b.py' else 1.0
        per_image = 1.0 if spec['batch'] == 1 else 0.5
        step = slow * per_image * spec['batch']
        result = dict(times_s=[step, 3 * step, step],
                      peak_memory_bytes=int(slow * 2**30))
        if spec['with_checkpoint']:
            result.update(checkpoint_bytes=int(slow * 1000), trainable=10,
                          total=1000, percent=1.0)
        return result
    return spawn


def test_report_medians_and_ratios(capsys):
    calls = []
    report = speed.benchmark(
        'a.py', compare='b.py', options={'x': 1}, batch_sizes=[1, 4],
        rounds=2, device='cpu', spawn=fake_spawn(calls))
    # 2 rounds x (infer b1, infer b4, train b1) x 2 configs, alternating
    assert len(calls) == 12
    assert [c['config'] for c in calls[:2]] == ['a.py', 'b.py']
    assert [c['with_checkpoint'] for c in calls] == [True] * 2 + [False] * 10
    assert calls[0]['options'] == {'x': 1} and calls[1]['options'] == {}
    a, b = report['configs']['config'], report['configs']['compare']
    assert a['infer_s_per_image_b1'] == 1.0
    assert a['infer_s_per_image_b4'] == 0.5
    assert a['throughput_b4_over_b1'] == 2.0
    assert a['train_step_s'] == 1.0 and b['train_step_s'] == 2.0
    assert a['checkpoint_bytes'] == 1000 and a['percent'] == 1.0
    assert b['train_peak_memory_bytes'] == 2**31
    assert report['ratios']['train_step_s'] == 0.5
    assert report['ratios']['checkpoint_bytes'] == 0.5
    assert not any(k.startswith('throughput') for k in report['ratios'])
    assert report['device'] == 'cpu' and report['rounds'] == 2
    out = capsys.readouterr().out
    assert '[round 1] compare train batch 1: 2.000 s' in out
    speed.print_report(report)
    table = capsys.readouterr().out
    assert '  config: a.py {' in table and 'config/compare' in table
    row = next(l for l in table.splitlines() if l.startswith('train_step_s'))
    assert row.split()[1:] == ['1.0000', '2.0000', '0.500']
    assert 'MiB' in next(l for l in table.splitlines()
                         if l.startswith('checkpoint_bytes'))


def test_summarise_pools_rounds():
    stats = speed.summarise({'k': [
        dict(times_s=[1.0, 5.0], peak_memory_bytes=3),
        dict(times_s=[2.0], peak_memory_bytes=7)]})
    assert stats['k'] == dict(median_s=2.0, times_s=[1.0, 5.0, 2.0],
                              peak_memory_bytes=7)


# a training step: slow
@pytest.mark.parametrize(
    'phase', ['infer', pytest.param('train', marks=pytest.mark.slow)])
def test_run_child_on_the_tiny_glip(demo_root, phase):
    result = speed.run_child(dict(
        config=DEMO_CONFIGS['glip'], options={},
        lang_model=str(demo_root / 'data' / 'demo' / 'bert'), device='cpu',
        size=64, batch=1, phase=phase, warmup=0, repeats=2, threads=None,
        with_checkpoint=phase == 'infer'))
    assert len(result['times_s']) == 2 and min(result['times_s']) > 0
    assert result['peak_memory_bytes'] > 0
    if phase == 'infer':
        assert result['trainable'] == 32768  # 16 tokens x 2048 (SDPT)
        assert 0 < result['checkpoint_bytes'] < 2e6


@pytest.mark.slow
def test_tool_end_to_end(demo_root, tmp_path):
    """The tool from another directory: the child finds the package, the
    relative config path stays the user's."""
    config = osp.relpath(DEMO_CONFIGS['glip'], tmp_path)
    out = tmp_path / 'speed.json'
    proc = run(
        'speed_benchmark.py', config, '--lang-model',
        demo_root / 'data' / 'demo' / 'bert', '--size', '64',
        '--phases', 'infer', '--warmup', '0', '--repeats', '1',
        '--device', 'cpu', '--json', out, cwd=tmp_path, ok=False)
    assert proc.code == 0, proc.stderr[-3000:]
    assert 'infer_s_per_image_b1' in proc.stdout
    report = json.loads(out.read_text())
    entry = report['configs']['config']
    assert entry['path'] == config and entry['trainable'] == 32768
    assert set(report) >= {'device', 'torch', 'ratios'}
    assert not report['ratios']
