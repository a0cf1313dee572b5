"""The prompt checkpoint (projects/sdpt/checkpoint/prompt_checkpoint.py):
the card PromptTuningHook records with it, the base-weights fingerprint and
its refusal, old checkpoints without a card, and tools/prompt_info.py."""
import importlib
import json
from types import SimpleNamespace

import pytest
import torch
from helpers import (
    TOOLS,
    build_model,
    save_base_weights,
    save_prompt_checkpoint,
)
from mmengine.logging import MMLogger

from projects.sdpt.checkpoint import prompt_checkpoint
from projects.sdpt.checkpoint.prompt_checkpoint import (
    CARD_KEY,
    META_KEY,
    BaseWeightsMismatch,
    base_fingerprint,
    complete_prompt_checkpoint,
    short,
    weights_fingerprint,
)
from projects.sdpt.engine.hooks.prompt_tuning_hook import PromptTuningHook
from projects.sdpt.version import __version__

CLASSES = ['circle', 'square', 'triangle']
# a change of the base weights too small to see but for the fingerprint
OTHER_BASE = {'backbone.patch_embed.projection.bias': 1e-3}


@pytest.fixture(scope='module')
def glip(demo_root):
    model, _ = build_model('glip', demo_root, num_tokens=4)
    return model


def _runner(model, **cfg):
    cfg = dict(dict(load_from='base.pth', base_weights='base.pth',
                    randomness=dict(seed=30), shots=5,
                    experiment=dict(method='SDPT', task='shapes'),
                    train_dataloader=dict(dataset=dict(
                        metainfo=dict(classes=CLASSES)))), **cfg)
    return SimpleNamespace(model=model, cfg=cfg, iter=19,
                           logger=MMLogger.get_current_instance())


def _save(model):
    """A prompt checkpoint of ``model`` saved by the runner of this file."""
    return save_prompt_checkpoint(model, runner=_runner(model))


def test_card_records_what_a_user_needs(glip):
    hook = PromptTuningHook()
    runner = _runner(glip)
    hook.before_train(runner)
    hook.after_val_epoch(SimpleNamespace(iter=10),
                         {'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5})
    card = save_prompt_checkpoint(glip, hook=hook, runner=runner)['meta'][
        CARD_KEY]
    signature = glip.prompt_tuning.signature()
    assert card['method'] == 'SDPTPrompt' and card['detector'] == 'GLIP'
    assert card['signature'] == json.loads(json.dumps(signature))
    assert card['base_fingerprint'] == base_fingerprint(glip)
    assert card['base_weights'] == 'base.pth'
    assert card['classes'] == CLASSES
    assert card['task'] == dict(seed=30, shots=5)
    assert card['experiment'] == dict(method='SDPT', task='shapes')
    assert card['metrics'] == {'coco/bbox_mAP': 0.25,
                               'coco/bbox_mAP_50': 0.5}
    assert card['metrics_iter'] == 10 and card['iter'] == 20
    assert card['trainable'] == 4 * 2048 == sum(
        p.numel() for p in glip.parameters() if p.requires_grad)
    assert card['total'] == sum(p.numel() for p in glip.parameters())
    assert card['toolbox_version'].startswith(__version__)
    # loads with torch's safe loader: plain types only
    assert json.loads(json.dumps(card)) == card


def test_fingerprint_follows_the_frozen_weights_only(glip):
    before = base_fingerprint(glip)
    with torch.no_grad():
        glip.prompt_tuning.prototypes['layer0'].tokens.add_(1.0)
    assert base_fingerprint(glip) == before  # prompts are not the base
    state = dict(reversed(list(glip.state_dict().items())))
    frozen = {k: v for k, v in state.items()
              if not k.startswith('prompt_tuning.')}
    assert weights_fingerprint(frozen) == before  # order does not matter
    frozen['backbone.patch_embed.projection.bias'] = \
        frozen['backbone.patch_embed.projection.bias'] + 1e-6
    assert weights_fingerprint(frozen) != before


def test_other_base_weights_are_refused_naming_both(glip, tmp_path):
    checkpoint = _save(glip)
    same = save_base_weights(glip, tmp_path / 'base.pth')
    other = save_base_weights(glip, tmp_path / 'other.pth', OTHER_BASE)
    merged = complete_prompt_checkpoint(checkpoint, glip, same, 'p.pth')
    assert set(merged) >= set(checkpoint['state_dict'])
    expected = short(checkpoint['meta'][CARD_KEY]['base_fingerprint'])
    with pytest.raises(BaseWeightsMismatch) as err:
        complete_prompt_checkpoint(checkpoint, glip, other, 'p.pth')
    message = str(err.value)
    assert expected in message and other in message
    assert 'allow_base_mismatch=True' in message
    found = message.split('has fingerprint ')[1][:12]
    assert found != expected
    # the explicit override loads it, with a warning
    complete_prompt_checkpoint(checkpoint, glip, other, 'p.pth',
                               allow_base_mismatch=True)


def test_hook_refuses_other_base_unless_overridden(glip, tmp_path):
    checkpoint = _save(glip)
    other = save_base_weights(glip, tmp_path / 'other.pth', OTHER_BASE)
    runner = _runner(glip, load_from='p.pth', base_weights=other)
    with pytest.raises(BaseWeightsMismatch):
        PromptTuningHook().after_load_checkpoint(runner, dict(checkpoint))
    runner.cfg['allow_base_mismatch'] = True
    PromptTuningHook().after_load_checkpoint(runner, dict(checkpoint))


def test_checkpoint_without_a_card_loads_with_a_warning(glip, tmp_path,
                                                        monkeypatch):
    warnings = []
    monkeypatch.setattr(prompt_checkpoint, 'print_log',
                        lambda msg, **kw: warnings.append((msg, kw)))
    old = _save(glip)
    del old['meta'][CARD_KEY]  # saved before cards existed
    base = save_base_weights(glip, tmp_path / 'base.pth')
    merged = complete_prompt_checkpoint(old, glip, base, 'old.pth')
    assert 'prompt_tuning.prototypes.layer0.tokens' in merged
    (message, kwargs), = warnings
    assert 'old.pth carries no prompt card' in message
    assert 'cannot be checked' in message and kwargs['level'] == 30


def test_prompt_info_prints_the_card(glip, tmp_path, capsys, monkeypatch):
    # tools/prompt_info.py is a script: importable with tools/ on sys.path
    # (for its own `import _bootstrap` too), which this test alone needs.
    monkeypatch.syspath_prepend(TOOLS)
    prompt_info = importlib.import_module('prompt_info')
    path = tmp_path / 'iter_20.pth'
    torch.save(_save(glip), path)
    assert prompt_info.main([str(path)]) == 0
    text = capsys.readouterr().out
    for shown in ('SDPTPrompt', 'GLIP', 'num_tokens=4',
                  base_fingerprint(glip), 'circle, square, triangle',
                  'seed=30', 'shots=5', 'none (no validation',
                  f'{4 * 2048:,} of'):
        assert shown in text, shown
    assert prompt_info.main([str(path), '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['card']['classes'] == CLASSES
    assert info['signature']['num_tokens'] == 4
    old = _save(glip)
    del old['meta'][CARD_KEY]
    torch.save(old, path)
    prompt_info.main([str(path)])
    assert 'no prompt card' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='No checkpoint at'):
        prompt_info.main([str(tmp_path / 'missing.pth')])


def test_existing_signature_metadata_is_unchanged(glip):
    meta = _save(glip)['meta'][META_KEY]
    assert meta == dict(glip.prompt_tuning.signature(), full_model=False,
                        base_weights='base.pth')
