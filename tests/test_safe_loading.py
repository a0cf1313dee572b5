"""The safe checkpoint loaders (projects/sdpt/checkpoint/safe_loading.py):
mmengine checkpoints load under torch >= 2.6 (weights_only), other pickled
objects need explicit trust, a truncated file is called truncated."""
import fractions

import numpy as np
import pytest
import torch
from helpers import build_model, save_prompt_checkpoint
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

from projects.sdpt.checkpoint.safe_loading import (
    TRUST_ENV,
    CorruptCheckpointError,
    UntrustedCheckpointError,
)


@pytest.fixture(scope='module')
def glip(demo_root):
    model, _ = build_model('glip', demo_root)
    return model


def test_mmengine_checkpoint_with_message_hub_loads_safely(tmp_path):
    hub = MessageHub('ckpt-test')
    for i in range(3):
        hub.update_scalar('train/loss', float(i))
    hub.update_info('iter', 3)
    path = tmp_path / 'iter_3.pth'
    torch.save(
        dict(
            meta=dict(iter=3, seed=np.int64(0)),
            state_dict={'w': torch.ones(2)},
            message_hub=hub.state_dict()), path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == 1.0
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))


def test_checkpoint_with_other_pickled_objects_needs_explicit_trust(
        tmp_path, monkeypatch):
    path = tmp_path / 'odd.pth'
    torch.save({'state_dict': {}, 'extra': fractions.Fraction(1, 3)}, path)
    with pytest.raises(UntrustedCheckpointError, match=TRUST_ENV):
        _load_checkpoint(str(path), map_location='cpu')
    monkeypatch.setenv(TRUST_ENV, '1')
    assert _load_checkpoint(
        str(path), map_location='cpu')['extra'] == fractions.Fraction(1, 3)


def test_truncated_checkpoint_is_reported_as_such(glip, tmp_path):
    path = tmp_path / 'iter_4.pth'
    save_prompt_checkpoint(glip, path)
    data = path.read_bytes()
    for cut in (0, len(data) // 3, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptCheckpointError,
                           match=f'{path} is truncated or corrupt'):
            _load_checkpoint(str(path), map_location='cpu')


def test_pickled_objects_are_refused_not_called_corrupt(tmp_path,
                                                        monkeypatch):
    path = tmp_path / 'odd.pth'
    torch.save({'state_dict': {}, 'x': fractions.Fraction(1, 3)}, path)
    with pytest.raises(UntrustedCheckpointError, match=TRUST_ENV):
        _load_checkpoint(str(path), map_location='cpu')
    monkeypatch.setenv(TRUST_ENV, '1')
    assert _load_checkpoint(str(path))['x'] == fractions.Fraction(1, 3)
