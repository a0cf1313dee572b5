"""tools/train.py, tools/test.py and tools/dist_train.sh end to end on the
demo configs, offline, in a scratch directory laid out like the repo's."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import DEMO_CONFIGS, REPO_ROOT

TOOLS = osp.join(REPO_ROOT, 'tools')
SHORT = ['--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
         'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']


def run(args, cwd, ok=True):
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, out[-4000:]
    return proc.returncode, out


@pytest.fixture(scope='module')
def workspace(demo_root):
    run([sys.executable, osp.join(TOOLS, 'make_demo_assets.py')], demo_root)
    return demo_root


@pytest.fixture(scope='module', params=['glip', 'gdino'])
def trained(request, workspace):
    name = request.param
    work_dir = workspace / f'work_{name}'
    _, log = run([
        sys.executable, osp.join(TOOLS, 'train.py'), DEMO_CONFIGS[name],
        '--work-dir', str(work_dir)
    ] + SHORT, workspace)
    return name, work_dir, log


def test_train_saves_prompt_only_checkpoints(trained):
    name, work_dir, log = trained
    assert 'Prompt tuning: trainable params: 32,768' in log
    assert 'coco/bbox_mAP' in log
    ckpt = torch.load(work_dir / 'iter_4.pth', weights_only=False)
    assert set(ckpt['state_dict']) == {
        k for k in ckpt['state_dict'] if k.startswith('prompt_tuning.')}
    assert len(ckpt['state_dict']) == (1 if name == 'glip' else 2)
    meta = ckpt['meta']['prompt_tuning']
    assert meta['num_tokens'] == 16 and meta['method'] == 'SDPTPrompt'
    assert osp.getsize(work_dir / 'iter_4.pth') < 2e6


def test_test_tool_evaluates_base_plus_prompt_checkpoint(trained):
    name, work_dir, _ = trained
    out = work_dir / 'preds.pkl'
    _, log = run([
        sys.executable, osp.join(TOOLS, 'test.py'), DEMO_CONFIGS[name],
        str(work_dir / 'iter_4.pth'), '--work-dir', str(work_dir / 'test'),
        '--out', str(out), '--show-dir', 'vis'
    ], work_dir.parent)
    assert 'Completing prompt checkpoint with base weights' in log
    assert 'bbox_mAP_copypaste' in log
    assert out.exists()
    vis = list((work_dir / 'test').rglob('vis/*.png')) + list(
        (work_dir / 'test').rglob('vis/*.jpg'))
    assert vis


def test_mismatched_prompt_checkpoint_is_refused(trained):
    name, work_dir, _ = trained
    code, log = run([
        sys.executable, osp.join(TOOLS, 'test.py'), DEMO_CONFIGS[name],
        str(work_dir / 'iter_4.pth'), '--work-dir', str(work_dir / 'bad'),
        '--cfg-options', 'model.prompt.num_tokens=8'
    ], work_dir.parent, ok=False)
    assert code != 0
    assert 'num_tokens: 16 in the checkpoint vs 8 in the config' in log


def test_resume_continues_from_the_saved_iteration(trained):
    name, work_dir, _ = trained
    if name != 'glip':
        pytest.skip('one detector is enough for the runner logic')
    resumed = work_dir.parent / 'resumed'
    resumed.mkdir(exist_ok=True)
    # an "interrupted" run: only the iteration-2 checkpoint exists
    _, log = run([
        sys.executable, osp.join(TOOLS, 'train.py'), DEMO_CONFIGS[name],
        '--work-dir', str(resumed), '--resume', str(work_dir / 'iter_2.pth')
    ] + SHORT, work_dir.parent)
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    assert (resumed / 'iter_4.pth').exists()


def test_dist_train_with_two_cpu_processes(workspace):
    work_dir = workspace / 'work_dist'
    _, log = run([
        'bash', osp.join(TOOLS, 'dist_train.sh'), DEMO_CONFIGS['glip'], '2',
        '--work-dir', str(work_dir)
    ] + SHORT[:1] + ['train_cfg.max_iters=2', 'train_cfg.val_interval=2'],
                 workspace)
    assert 'Distributed launcher: pytorch' in log or 'world_size: 2' in log \
        or (work_dir / 'iter_2.pth').exists()
    assert (work_dir / 'iter_2.pth').exists()
