"""tools/train.py, tools/test.py and tools/dist_train.sh end to end on the
demo configs, offline, in a scratch directory laid out like the repo's."""
import os.path as osp

import pytest
import torch
from helpers import DEMO_CONFIGS, run

pytestmark = pytest.mark.slow  # every test trains or runs a tool
SHORT = ['--cfg-options', 'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
         'default_hooks.checkpoint.interval=2',
         'default_hooks.logger.interval=1']


@pytest.fixture(scope='module', params=['glip', 'gdino'])
def trained(request, workspace):
    name = request.param
    work_dir = workspace / f'work_{name}'
    log = run('train.py', DEMO_CONFIGS[name], '--work-dir', work_dir, *SHORT,
              cwd=workspace, timeout=900).out
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
    # saved before the validation of iteration 4, its card has that
    # validation's metrics (the file rewritten); iter_2's had none
    card = ckpt['meta']['prompt_card']
    assert card['iter'] == card['metrics_iter'] == 4
    assert set(card['metrics']) >= {'coco/bbox_mAP', 'coco/bbox_mAP_50'}
    marker = ckpt['state_dict']._metadata['']['prompt_checkpoint']
    assert marker['card']['metrics'] == card['metrics']
    assert f"coco/bbox_mAP: {card['metrics']['coco/bbox_mAP']:.4f}" in log


def test_test_tool_evaluates_base_plus_prompt_checkpoint(trained):
    name, work_dir, _ = trained
    out = work_dir / 'preds.pkl'
    log = run('test.py', DEMO_CONFIGS[name], work_dir / 'iter_4.pth',
              '--work-dir', work_dir / 'test', '--out', out, '--show-dir',
              'vis', cwd=work_dir.parent, timeout=900).out
    assert 'Completing prompt checkpoint with base weights' in log
    assert 'bbox_mAP_copypaste' in log
    assert out.exists()
    vis = list((work_dir / 'test').rglob('vis/*.png')) + list(
        (work_dir / 'test').rglob('vis/*.jpg'))
    assert vis


def test_mismatched_prompt_checkpoint_is_refused(trained):
    name, work_dir, _ = trained
    res = run('test.py', DEMO_CONFIGS[name], work_dir / 'iter_4.pth',
              '--work-dir', work_dir / 'bad', '--cfg-options',
              'model.prompt.num_tokens=8', cwd=work_dir.parent, ok=False,
              timeout=900)
    assert res.code != 0
    assert 'num_tokens: 16 in the checkpoint vs 8 in the config' in res.out


def test_resume_continues_from_the_saved_iteration(trained):
    name, work_dir, _ = trained
    if name != 'glip':
        pytest.skip('one detector is enough for the runner logic')
    resumed = work_dir.parent / 'resumed'
    resumed.mkdir(exist_ok=True)
    # an "interrupted" run: only the iteration-2 checkpoint exists
    log = run('train.py', DEMO_CONFIGS[name], '--work-dir', resumed,
              '--resume', work_dir / 'iter_2.pth', *SHORT,
              cwd=work_dir.parent, timeout=900).out
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log
    assert (resumed / 'iter_4.pth').exists()


def test_dist_train_with_two_cpu_processes(workspace):
    """Two processes train together: mmengine's logger writes one log file
    a rank at log_level DEBUG, and each rank's log says the world has two
    processes and that it saved at the last iteration (DDP averages the
    gradients of both at every step: neither gets there alone)."""
    work_dir = workspace / 'work_dist'
    log = run('dist_train.sh', DEMO_CONFIGS['glip'], '2', '--work-dir',
              work_dir, *SHORT[:1], 'train_cfg.max_iters=2',
              'train_cfg.val_interval=2', 'log_level=DEBUG', cwd=workspace,
              timeout=900).out
    assert 'Distributed launcher: pytorch' in log or 'world_size: 2' in log \
        or (work_dir / 'iter_2.pth').exists()
    assert (work_dir / 'iter_2.pth').exists()
    rank_logs = sorted(work_dir.glob('*/*_rank*.log'))
    assert [p.name.rsplit('_', 1)[1] for p in rank_logs] == [
        'rank0.log', 'rank1.log']
    for rank_log in rank_logs:
        text = rank_log.read_text()
        assert 'Distributed training: True' in text
        assert 'GPU number: 2' in text  # mmengine's name for the world size
        assert 'Saving checkpoint at 2 iterations' in text
