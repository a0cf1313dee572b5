"""Checkpoints written atomically
(projects/sdpt/engine/hooks/atomic_checkpoint_hook.py): a crash or a SIGKILL
during a save leaves the previous checkpoint loadable."""
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest
import torch
from helpers import REPO_ROOT, checkpoint_state, tool_env
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

from projects.sdpt.engine.hooks import AtomicCheckpointHook


def _fake_runner(work_dir):
    hub = MessageHub.get_instance(f'atomic-{work_dir}')

    def save(out_dir, filename, file_client_args=None, backend_args=None,
             **kwargs):
        save_checkpoint({'state_dict': {'w': torch.full((4, ), 7.0)},
                         'meta': {}}, osp.join(out_dir, filename),
                        backend_args=backend_args)

    return SimpleNamespace(work_dir=str(work_dir), message_hub=hub,
                           logger=MMLogger.get_current_instance(),
                           save_checkpoint=save)


def test_a_crash_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    """mmengine's CheckpointHook deletes the oldest checkpoint before it
    writes the new one (max_keep_ckpts=1 leaves nothing if the save dies);
    ours deletes it only after the new file is complete."""
    runner = _fake_runner(tmp_path)
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
    hook.before_train(runner)
    hook._save_checkpoint_with_step(runner, 1, {})

    def dies(*args, **kwargs):
        raise KeyboardInterrupt('killed while saving')

    runner.save_checkpoint = dies
    with pytest.raises(KeyboardInterrupt):
        hook._save_checkpoint_with_step(runner, 2, {})
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'iter_1.pth')
    assert torch.equal(checkpoint_state(tmp_path / 'iter_1.pth')['w'],
                       torch.full((4, ), 7.0))


KILLER = textwrap.dedent('''
    import sys, os.path as osp
    sys.path.insert(0, {repo!r})
    import torch
    from types import SimpleNamespace
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.runner.checkpoint import save_checkpoint as save
    from projects.sdpt.engine.hooks import AtomicCheckpointHook
    big = torch.arange(4_000_000, dtype=torch.float32)
    def save_checkpoint(out_dir, filename, file_client_args=None,
                        backend_args=None, **kwargs):
        save(dict(state_dict=dict(w=big), meta=dict()),
             osp.join(out_dir, filename), backend_args=backend_args)
    runner = SimpleNamespace(
        work_dir={work!r}, message_hub=MessageHub.get_instance('saver'),
        logger=MMLogger.get_instance('saver'),
        save_checkpoint=save_checkpoint)
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
    hook.before_train(runner)
    step = 0
    while True:
        step += 1
        hook._save_checkpoint_with_step(runner, step, dict())
''')


@pytest.mark.slow
def test_sigkill_at_random_moments_of_saving_leaves_a_loadable_checkpoint(
        tmp_path):
    """A process saving 16 MB checkpoints back to back (the old one deleted
    each time) is SIGKILLed at arbitrary moments: last_checkpoint always
    names a complete checkpoint."""
    script = tmp_path / 'saver.py'
    for trial, delay in enumerate((0.0, 0.17, 0.41)):
        work = tmp_path / f'trial{trial}'
        work.mkdir()
        script.write_text(KILLER.format(
            repo=REPO_ROOT, work=str(work)))
        proc = subprocess.Popen([sys.executable, str(script)], env=tool_env(),
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not (work / 'last_checkpoint').exists() and \
                proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        last = (work / 'last_checkpoint').read_text()
        ckpt = _load_checkpoint(last, map_location='cpu')
        assert torch.equal(ckpt['state_dict']['w'],
                           torch.arange(4_000_000, dtype=torch.float32))
