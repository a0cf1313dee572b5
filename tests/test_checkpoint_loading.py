"""mmengine checkpoints load safely under torch >= 2.6 (weights_only)."""
import fractions

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

import projects.sdpt  # noqa: F401  (registers the loaders)
from projects.sdpt.checkpoint.safe_loading import TRUST_ENV, UntrustedCheckpointError


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
