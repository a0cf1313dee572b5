"""Weight averaging (projects/sdpt/engine/hooks/weight_averaging_hook.py): an
exponential moving average of the trainable parameters replaces them after
the last iteration, before the last checkpoint; frozen parameters are left
alone; a resumed run ends where an uninterrupted one does."""
import copy

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

from projects.sdpt.engine.hooks import WeightAveragingHook
from projects.sdpt.engine.hooks.weight_averaging_hook import CHECKPOINT_KEY
from projects.sdpt.experiments.transfer.protocol import (
    EMA_DECAY,
    lr_schedule,
    schedule_hooks,
)

ITERS = 6


class TwoLayers(BaseModel):
    """A trainable layer after a frozen one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.frozen = torch.nn.Linear(3, 3)
        self.frozen.requires_grad_(False)
        self.trained = torch.nn.Linear(3, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = torch.stack(inputs)
        return dict(loss=((self.trained(self.frozen(x)) - 1)**2).mean())


class Record(Hook):
    """The trainable parameters after each iteration, before the average
    is written into them."""
    priority = 'HIGH'

    def __init__(self):
        self.seen = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.seen.append([p.detach().clone() for p in
                          runner.model.trained.parameters()])


def _runner(work_dir, hooks, resume=False, load_from=None):
    data = [dict(inputs=torch.full((3, ), float(i)) / 4) for i in range(8)]
    return Runner(
        model=TwoLayers(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data, batch_size=2, collate_fn=dict(type='pseudo_collate'),
            sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=ITERS),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3,
                                           by_epoch=False)),
        custom_hooks=hooks, resume=resume, load_from=load_from,
        randomness=dict(seed=0),
        default_scope='mmengine')


def _ema(seen, decay, begin=0):
    average = None
    for params in seen[begin:]:
        average = [p.clone() for p in params] if average is None else [
            decay * a + (1 - decay) * p for a, p in zip(average, params)]
    return average


def test_the_average_of_the_trainable_parameters_replaces_them(tmp_path):
    record = Record()
    runner = _runner(tmp_path, [record, WeightAveragingHook(decay=0.5,
                                                            begin_iter=2)])
    frozen = copy.deepcopy(runner.model.frozen.state_dict())
    runner.train()
    assert len(record.seen) == ITERS
    final = list(runner.model.trained.parameters())
    expected = _ema(record.seen, 0.5, begin=2)
    for got, want, last in zip(final, expected, record.seen[-1]):
        torch.testing.assert_close(got.detach(), want)
        assert not torch.equal(got.detach(), last)  # not the last iterate
    for name, value in runner.model.frozen.state_dict().items():
        assert torch.equal(value, frozen[name])
    # the last checkpoint holds the average; the one before, the average so
    # far beside the iterate, to resume from
    last = torch.load(tmp_path / f'iter_{ITERS}.pth', weights_only=False)
    torch.testing.assert_close(last['state_dict']['trained.weight'],
                               expected[0])
    assert CHECKPOINT_KEY not in last
    middle = torch.load(tmp_path / 'iter_3.pth', weights_only=False)
    assert middle[CHECKPOINT_KEY]['updates'] == 1  # iteration 3 only
    torch.testing.assert_close(middle[CHECKPOINT_KEY]['average'][0],
                               _ema(record.seen[:3], 0.5, begin=2)[0])


def test_a_resumed_run_ends_with_the_same_average(tmp_path):
    whole = _runner(tmp_path / 'whole', [WeightAveragingHook(decay=0.5)])
    whole.train()
    # as if the run had stopped after its checkpoint of iteration 3
    resumed = _runner(tmp_path / 'resumed', [WeightAveragingHook(decay=0.5)],
                      resume=True, load_from=str(tmp_path / 'whole' /
                                                 'iter_3.pth'))
    resumed.train()
    assert resumed.iter == ITERS
    for a, b in zip(whole.model.trained.parameters(),
                    resumed.model.trained.parameters()):
        torch.testing.assert_close(a, b)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='decay=1'):
        WeightAveragingHook(decay=1)
    with pytest.raises(ValueError, match='begin_iter=-1'):
        WeightAveragingHook(begin_iter=-1)


def test_the_ema_schedule_is_cosine_with_the_average():
    assert lr_schedule('cosine-ema', 200) == lr_schedule('cosine', 200)
    assert schedule_hooks('cosine-ema') == [
        dict(type='WeightAveragingHook', decay=EMA_DECAY)]
    assert schedule_hooks('cosine') == schedule_hooks('constant') == []
