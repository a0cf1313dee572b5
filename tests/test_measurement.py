"""What the benchmarks measure with (projects/sdpt/experiments/measurement.py):
a seeded synthetic batch, a failed child reported."""
import pytest

from projects.sdpt.experiments import measurement


def test_synthetic_batch_is_seeded():
    a = measurement.synthetic_batch(('x', 'y'), 32, 2, seed=1)
    b = measurement.synthetic_batch(('x', 'y'), 32, 2, seed=1)
    assert len(a['inputs']) == 2 and a['inputs'][0].shape == (3, 32, 32)
    assert all((x == y).all() for x, y in zip(a['inputs'], b['inputs']))
    sample = a['data_samples'][1]
    assert sample.text == ('x', 'y') and sample.img_shape == (32, 32)
    boxes = sample.gt_instances.bboxes
    assert boxes.shape == (3, 4) and (boxes[:, 2:] > boxes[:, :2]).all()
    assert int(sample.gt_instances.labels.max()) < 2


@pytest.mark.slow
def test_a_failed_child_is_reported(tmp_path, capsys):
    spec = dict(config=str(tmp_path / 'missing.py'), device='cpu')
    with pytest.raises(measurement.ChildFailedError, match='child failed'):
        measurement.spawn_child(spec)
    assert 'Config file not found' in capsys.readouterr().err
