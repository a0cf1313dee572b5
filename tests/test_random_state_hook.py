"""The random state in checkpoints
(projects/sdpt/engine/hooks/random_state_hook.py): a run killed with
SIGKILL and resumed ends with the prompts of an uninterrupted run, bit for
bit."""
import os
import signal
import subprocess
import time

import pytest
import torch
from helpers import (
    DEMO_CONFIGS,
    DETERMINISTIC,
    checkpoint_state,
    run,
    tool_command,
    tool_env,
)

GLIP = DEMO_CONFIGS['glip']


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_prompts_bit_for_bit(workspace):
    """SIGKILL a run right after its first checkpoint, resume it: the final
    prompts equal an uninterrupted run's exactly (fixed seed,
    deterministic, CPU). Without the random state in the checkpoint the
    resumed run draws other flips / dropout masks and differs."""
    full = workspace / 'bitwise_full'
    run('train.py', GLIP, '--work-dir', full, *DETERMINISTIC, cwd=workspace)

    killed = workspace / 'bitwise_killed'
    proc = subprocess.Popen(
        tool_command('train.py', GLIP, '--work-dir', killed, *DETERMINISTIC),
        cwd=workspace, env=tool_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    pointer = killed / 'last_checkpoint'
    deadline = time.monotonic() + 300
    while not pointer.exists() and proc.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / 'iter_2.pth').exists(), 'killed too late'
    # every checkpoint left behind is complete
    for ckpt in killed.glob('iter_*.pth'):
        checkpoint_state(ckpt)

    log = run('train.py', GLIP, '--work-dir', killed, '--resume',
              *DETERMINISTIC, cwd=workspace).out
    assert 'resumed epoch: 0, iter: 1' in log
    assert 'Random state restored from the checkpoint' in log
    a = checkpoint_state(full / 'iter_2.pth')
    b = checkpoint_state(killed / 'iter_2.pth')
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and the prompts did train
    assert not torch.equal(a[key], checkpoint_state(full / 'iter_1.pth')[key])
