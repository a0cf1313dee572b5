"""Non-finite losses (projects/sdpt/engine/hooks/finite_loss_hook.py): every
iteration is checked, before its backward pass (and the head's predictions
before the loss); a NaN stops the run at that iteration and keeps the last
good checkpoint."""
import textwrap
from types import SimpleNamespace

import pytest
import torch
from helpers import DEMO_CONFIGS, DETERMINISTIC, checkpoint_state, run
from mmengine.logging import MessageHub

from projects.sdpt.engine.hooks import FiniteLossHook, NonFiniteLossError

GLIP = DEMO_CONFIGS['glip']


NAN_HOOK = textwrap.dedent('''
    from mmengine.hooks import Hook
    from mmdet.registry import HOOKS

    @HOOKS.register_module()
    class PoisonLossAt2(Hook):
        """Test only: iteration 2's classification loss is NaN."""
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter == 1:
                loss = runner.model.loss
                def poisoned(*args, **kwargs):
                    losses = loss(*args, **kwargs)
                    losses['loss_cls'] = losses['loss_cls'] * float('nan')
                    return losses
                runner.model.loss = poisoned
''')


@pytest.mark.slow
def test_nan_loss_stops_the_run_at_that_iteration_and_keeps_last_good(
        workspace, tmp_path):
    (tmp_path / 'nan_hook.py').write_text(NAN_HOOK)
    config = tmp_path / 'nan_config.py'
    config.write_text(
        f'_base_ = [{GLIP!r}]\n'
        "custom_imports = dict(imports=['projects.sdpt', 'nan_hook'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='PromptTuningHook'), "
        "dict(type='FiniteLossHook'), dict(type='RandomStateHook'), "
        "dict(type='PoisonLossAt2')]\n")
    work = workspace / 'nan_run'
    res = run('train.py', config, '--work-dir', work, *DETERMINISTIC,
              cwd=workspace, ok=False, PYTHONPATH=str(tmp_path))
    log = res.out
    assert res.code == 1, log[-3000:]
    assert 'NonFiniteLossError: Non-finite loss at iteration 2 (loss=nan' \
        in log and 'loss_cls=nan' in log
    assert 'Iter(train) [1/2]' in log and 'Iter(train) [2/2]' not in log
    assert f'last good checkpoint is {work / "iter_1.pth"}' in log
    assert not (work / 'iter_2.pth').exists()
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_1.pth')
    good = checkpoint_state(work / 'iter_1.pth')
    assert all(torch.isfinite(v).all() for v in good.values())


@pytest.mark.parametrize('value', [float('inf'), float('-inf'), float('nan')])
def test_every_iteration_is_checked_for_a_non_finite_loss(value):
    model = torch.nn.Linear(2, 2)
    hub = MessageHub.get_instance('finite-loss-test')
    hub.update_info('last_ckpt', 'work/iter_6.pth')
    runner = SimpleNamespace(model=model, iter=6, message_hub=hub)
    hook = FiniteLossHook()
    hook.after_train_iter(runner, 6, outputs=dict(loss=torch.tensor(1.0)))
    with pytest.raises(NonFiniteLossError) as err:
        hook.after_train_iter(runner, 6, outputs=dict(
            loss=torch.tensor(value), loss_cls=torch.tensor(value),
            acc=torch.tensor(1.0)))
    assert f'Non-finite loss at iteration 7 (loss={value}' in str(err.value)
    assert '--resume work/iter_6.pth' in str(err.value)


class _LossModel(torch.nn.Module):
    """Returns mmdet-style losses (a tensor and a list of tensors)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, x, mode='loss'):
        return dict(loss_cls=(self.w * x).sum(),
                    loss_bbox=[self.w.sum(), (self.w * x).mean()],
                    acc=torch.tensor(1.0))


def test_a_non_finite_loss_stops_before_its_backward_pass():
    # A backward pass through NaN offsets crashes mmcv's CPU deformable
    # convolution, so the losses are checked as the forward returns them.
    model = _LossModel()
    hub = MessageHub.get_instance('finite-loss-forward-test')
    runner = SimpleNamespace(model=model, iter=2, message_hub=hub)
    hook = FiniteLossHook()
    hook.before_train(runner)
    model(torch.ones(2), mode='loss')
    model(torch.tensor([float('nan'), 1.0]), mode='predict')  # not a loss
    with pytest.raises(NonFiniteLossError) as err:
        model(torch.tensor([float('nan'), 1.0]), mode='loss')
    assert 'iteration 3 (loss=nan, loss_cls=nan, loss_bbox=nan)' in str(
        err.value) and 'before its backward pass' in str(err.value)
    hook.after_train(runner)
    model(torch.tensor([float('nan'), 1.0]), mode='loss')  # hook removed


class _HeadModel(torch.nn.Module):
    """A detector whose head's predictions feed its loss (as DETR heads'
    do, through a Hungarian assigner that fails on non-finite costs)."""

    def __init__(self):
        super().__init__()
        self.bbox_head = torch.nn.Linear(2, 2)

    def forward(self, x, mode='loss'):
        return dict(loss_cls=self.bbox_head(x).sum())


def test_non_finite_head_predictions_stop_before_the_loss():
    model = _HeadModel()
    hub = MessageHub.get_instance('finite-loss-head-test')
    runner = SimpleNamespace(model=model, iter=4, message_hub=hub)
    hook = FiniteLossHook()
    hook.before_train(runner)
    torch.nn.init.constant_(model.bbox_head.weight, 10.0)
    big = torch.tensor([3e38, 3e38])  # finite input, overflowing activations
    model(torch.ones(2))
    model(torch.tensor([-3e38, -3e38]))  # -inf: a mask, not an overflow
    model.eval()
    model(big, mode='predict')  # evaluation is not checked
    model.train()
    with pytest.raises(NonFiniteLossError) as err:
        model(big)
    assert 'iteration 5 (bbox_head predictions=' in str(err.value) and \
        'before its loss' in str(err.value)
    hook.after_train(runner)
    model(big)  # hooks removed
