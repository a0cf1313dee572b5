"""Reliability: a killed run resumes bit for bit, checkpoints survive a kill
during a save, non-finite losses stop the run at once, bad checkpoints and
missing weights / BERT give a message instead of a stack trace, a broken
training set stops the run before it starts."""
import json
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
from mmengine.config import Config
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner.checkpoint import _load_checkpoint

from conftest import DEMO_CONFIGS, REPO_ROOT, build_model
from projects.sdpt.checkpoint.safe_loading import (TRUST_ENV, CorruptCheckpointError,
                                      UntrustedCheckpointError)
from projects.sdpt.engine.hooks.prompt_tuning_hook import (META_KEY, PromptCheckpointMismatch,
                                 PromptTuningHook)
from projects.sdpt.engine.hooks import AtomicCheckpointHook

TOOLS = osp.join(REPO_ROOT, 'tools')
GLIP = DEMO_CONFIGS['glip']
# deterministic, a checkpoint every iteration, no validation
DETERMINISTIC = [
    '--cfg-options', 'randomness.seed=0', 'randomness.deterministic=True',
    'train_dataloader.batch_size=1', 'train_cfg.max_iters=2',
    'train_cfg.val_begin=100',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=10',
    'default_hooks.logger.interval=1'
]


def _env(**extra):
    return dict(os.environ, PYTHONWARNINGS='ignore', **extra)


def run(args, cwd, ok=True, **env):
    proc = subprocess.run(args, cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, out[-4000:]
    return proc.returncode, out


@pytest.fixture(scope='module')
def workspace(demo_root):
    run([sys.executable, osp.join(TOOLS, 'make_demo_assets.py')], demo_root)
    return demo_root


def _prompts(path):
    return _load_checkpoint(str(path), map_location='cpu')['state_dict']


# ------------------------------------------------------------ resume / kill
def test_killed_run_resumes_to_the_same_prompts_bit_for_bit(workspace):
    """SIGKILL a run right after its first checkpoint, resume it: the final
    prompts equal an uninterrupted run's exactly (fixed seed,
    deterministic, CPU). Without the random state in the checkpoint the
    resumed run draws other flips / dropout masks and differs."""
    train = [sys.executable, osp.join(TOOLS, 'train.py'), GLIP]
    full = workspace / 'bitwise_full'
    run(train + ['--work-dir', str(full)] + DETERMINISTIC, workspace)

    killed = workspace / 'bitwise_killed'
    proc = subprocess.Popen(
        train + ['--work-dir', str(killed)] + DETERMINISTIC, cwd=workspace,
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        _prompts(ckpt)

    _, log = run(train + ['--work-dir', str(killed), '--resume'] +
                 DETERMINISTIC, workspace)
    assert 'resumed epoch: 0, iter: 1' in log
    assert 'Random state restored from the checkpoint' in log
    a, b = _prompts(full / 'iter_2.pth'), _prompts(killed / 'iter_2.pth')
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and the prompts did train
    assert not torch.equal(a[key], _prompts(full / 'iter_1.pth')[key])


def _fake_runner(work_dir):
    hub = MessageHub.get_instance(f'atomic-{work_dir}')

    def save_checkpoint(out_dir, filename, file_client_args=None,
                        backend_args=None, **kwargs):
        from mmengine.runner.checkpoint import save_checkpoint
        save_checkpoint({'state_dict': {'w': torch.full((4, ), 7.0)},
                         'meta': {}}, osp.join(out_dir, filename),
                        backend_args=backend_args)

    return SimpleNamespace(work_dir=str(work_dir), message_hub=hub,
                           logger=MMLogger.get_current_instance(),
                           save_checkpoint=save_checkpoint)


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
    assert torch.equal(_prompts(tmp_path / 'iter_1.pth')['w'],
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
        proc = subprocess.Popen([sys.executable, str(script)], env=_env(),
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


# ---------------------------------------------------------- non-finite loss
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
    code, log = run([
        sys.executable, osp.join(TOOLS, 'train.py'), str(config),
        '--work-dir', str(work)] + DETERMINISTIC,
        workspace, ok=False, PYTHONPATH=str(tmp_path))
    assert code == 1, log[-3000:]
    assert 'NonFiniteLossError: Non-finite loss at iteration 2 (loss=nan' \
        in log and 'loss_cls=nan' in log
    assert 'Iter(train) [1/2]' in log and 'Iter(train) [2/2]' not in log
    assert f'last good checkpoint is {work / "iter_1.pth"}' in log
    assert not (work / 'iter_2.pth').exists()
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_1.pth')
    good = _prompts(work / 'iter_1.pth')
    assert all(torch.isfinite(v).all() for v in good.values())


@pytest.mark.parametrize('value', [float('inf'), float('-inf'), float('nan')])
def test_every_iteration_is_checked_for_a_non_finite_loss(value):
    from projects.sdpt.engine.hooks import FiniteLossHook, NonFiniteLossError
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
    from projects.sdpt.engine.hooks import FiniteLossHook, NonFiniteLossError
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
    from projects.sdpt.engine.hooks import FiniteLossHook, NonFiniteLossError
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

# --------------------------------------------------------- bad checkpoints
@pytest.fixture(scope='module')
def glip(demo_root):
    model, cfg = build_model('glip', demo_root)
    return model


def _runner(model, load_from, base_weights='base.pth', training=False,
            resume=False):
    from mmengine.runner import BaseLoop

    class TrainLoop(BaseLoop):
        def run(self):
            pass

    return SimpleNamespace(
        model=model,
        cfg=Config(dict(load_from=load_from, base_weights=base_weights)),
        logger=MMLogger.get_current_instance(),
        _train_loop=object.__new__(TrainLoop) if training else None,
        _resume=resume)


def _prompt_checkpoint(model, **meta):
    signature = dict(model.prompt_tuning.signature(), full_model=False,
                     base_weights='base.pth')
    signature.update(meta)
    return dict(meta={META_KEY: signature}, state_dict={
        k: v.clone() for k, v in model.state_dict().items()
        if k.startswith('prompt_tuning.')})


@pytest.mark.parametrize('field,value,shown', [
    ('detector', 'GroundingDINO', "detector: 'GroundingDINO' in the "
     "checkpoint vs 'GLIP'"),
    ('num_tokens', 8, 'num_tokens: 8 in the checkpoint vs 16'),
    ('layers', [0, 1], 'layers: [0, 1] in the checkpoint vs [0]'),
    ('method', 'DPTPrompt', "method: 'DPTPrompt' in the checkpoint vs "
     "'SDPTPrompt'"),
])
def test_prompt_checkpoint_of_another_model_is_refused(glip, field, value,
                                                       shown):
    assert glip.prompt_tuning.signature()['layers'] == [0]  # 1 fusion layer
    ckpt = _prompt_checkpoint(glip, **{field: value})
    with pytest.raises(PromptCheckpointMismatch) as err:
        PromptTuningHook().after_load_checkpoint(
            _runner(glip, 'other.pth'), ckpt)
    assert 'other.pth does not match this model' in str(err.value)
    assert shown.split(' vs ')[0] in str(err.value) and \
        shown.split(' vs ')[1] in str(err.value)


def test_detector_checkpoint_where_a_prompt_checkpoint_is_expected(glip):
    detector = dict(meta={}, state_dict={
        k: v for k, v in glip.state_dict().items()
        if not k.startswith('prompt_tuning.')})
    hook = PromptTuningHook()
    # evaluating (tools/test.py) or resuming from it: refused
    for runner in (_runner(glip, 'det.pth'),
                   _runner(glip, 'det.pth', training=True, resume=True),
                   _runner(glip, 'det.pth', training=True)):
        with pytest.raises(PromptCheckpointMismatch,
                           match='det.pth holds no prompt parameters'):
            hook.after_load_checkpoint(runner, dict(detector))
    # as the base weights a training run starts from: fine
    hook.after_load_checkpoint(
        _runner(glip, 'det.pth', base_weights='det.pth', training=True),
        dict(detector))


def test_prompt_checkpoint_where_the_detector_weights_are_expected(
        glip, tmp_path):
    prompt = tmp_path / 'prompt.pth'
    torch.save(_prompt_checkpoint(glip), prompt)
    with pytest.raises(PromptCheckpointMismatch,
                       match='is itself a prompt checkpoint'):
        PromptTuningHook().after_load_checkpoint(
            _runner(glip, str(prompt), base_weights=str(prompt)),
            _prompt_checkpoint(glip))


def test_truncated_checkpoint_is_reported_as_such(glip, tmp_path):
    path = tmp_path / 'iter_4.pth'
    torch.save(_prompt_checkpoint(glip), path)
    data = path.read_bytes()
    for cut in (0, len(data) // 3, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptCheckpointError,
                           match=f'{path} is truncated or corrupt'):
            _load_checkpoint(str(path), map_location='cpu')


def test_pickled_objects_are_refused_not_called_corrupt(tmp_path,
                                                        monkeypatch):
    import fractions
    path = tmp_path / 'odd.pth'
    torch.save({'state_dict': {}, 'x': fractions.Fraction(1, 3)}, path)
    with pytest.raises(UntrustedCheckpointError, match=TRUST_ENV):
        _load_checkpoint(str(path), map_location='cpu')
    monkeypatch.setenv(TRUST_ENV, '1')
    assert _load_checkpoint(str(path))['x'] == fractions.Fraction(1, 3)


def test_tools_report_bad_checkpoints_without_a_stack_trace(
        workspace, tmp_path):
    test = [sys.executable, osp.join(TOOLS, 'test.py'), GLIP]
    base = workspace / 'data' / 'demo' / 'glip_tiny_base.pth'
    code, log = run(test + [str(base), '--work-dir', str(tmp_path)],
                    workspace, ok=False)
    assert code == 1 and 'Traceback' not in log, log[-3000:]
    assert 'PromptCheckpointMismatch' in log and \
        'holds no prompt parameters' in log
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(base.read_bytes()[:1000])
    code, log = run(test + [str(broken), '--work-dir', str(tmp_path)],
                    workspace, ok=False)
    assert code == 1 and 'Traceback' not in log, log[-3000:]
    assert f'{broken} is truncated or corrupt' in log


# ------------------------------------------------- missing weights / BERT
def test_missing_bert_offline_says_how_to_provide_it(workspace, tmp_path):
    code, log = run([
        sys.executable, osp.join(TOOLS, 'print_trainable.py'), GLIP,
        '--lang-model', 'bert-base-uncased'], workspace, ok=False,
        HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path / 'empty-hf-cache'))
    assert code == 1 and 'Traceback' not in log, log[-3000:]
    assert "The text encoder 'bert-base-uncased' is not a local directory" \
        in log
    assert "save_pretrained('DIR')" in log
    assert 'model.detector.language_model.name=DIR' in log


def test_missing_base_weights_say_what_is_missing(workspace, tmp_path):
    missing = tmp_path / 'glip_l.pth'
    code, log = run([
        sys.executable, osp.join(TOOLS, 'train.py'), GLIP, '--work-dir',
        str(tmp_path), '--cfg-options', f'load_from={missing}',
        f'base_weights={missing}'], workspace, ok=False)
    assert code == 1 and 'Traceback' not in log, log[-3000:]
    assert f'base_weights = {missing}: no such file' in log
    assert 'load_from=PATH base_weights=PATH' in log


# ------------------------------------------------------------ bad data
def test_training_on_broken_annotations_stops_before_it_starts(
        workspace, tmp_path):
    shapes = workspace / 'data' / 'demo' / 'shapes'
    data = json.loads(
        (shapes / 'annotations' / 'instances_train.json').read_text())
    data['annotations'][0]['category_id'] = 42
    data['images'][1]['file_name'] = 'gone.png'
    ann = tmp_path / 'train.json'
    ann.write_text(json.dumps(data))
    start = time.monotonic()
    code, log = run([
        sys.executable, osp.join(TOOLS, 'train.py'), GLIP, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options',
        f'train_dataloader.dataset.ann_file={ann}'], workspace, ok=False)
    assert code == 1 and 'Traceback' not in log, log[-3000:]
    assert 'ERROR [unknown-category]' in log and str(ann) in log
    assert 'ERROR [missing-image]' in log and 'gone.png' in log
    assert 'Iter(train)' not in log and '--skip-data-check' in log
    assert time.monotonic() - start < 120
