"""Prompt cards: what PromptTuningHook records with a prompt checkpoint, the
base-weights fingerprint and its refusal, old checkpoints without a card,
and tools/prompt_info.py."""
import json
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger

from conftest import build_model

from projects.sdpt.engine.hooks.prompt_tuning_hook import PromptTuningHook
from projects.sdpt.checkpoint.prompt_checkpoint import (CARD_KEY, META_KEY,
                                              BaseWeightsMismatch,
                                              base_fingerprint,
                                              complete_prompt_checkpoint,
                                              short, weights_fingerprint)
from projects.sdpt.version import __version__

CLASSES = ['circle', 'square', 'triangle']


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


def _save(model, hook=None, runner=None):
    hook = hook or PromptTuningHook()
    checkpoint = dict(state_dict={
        k: v.clone() for k, v in model.state_dict().items()}, meta={})
    hook.before_save_checkpoint(runner or _runner(model), checkpoint)
    return checkpoint


def _base_file(model, path, perturb=False):
    state = {k: v.clone() for k, v in model.state_dict().items()
             if not k.startswith('prompt_tuning.')}
    if perturb:
        state['backbone.patch_embed.projection.bias'] += 1e-3
    torch.save(dict(state_dict=state, meta={}), path)
    return str(path)


def test_card_records_what_a_user_needs(glip):
    hook = PromptTuningHook()
    runner = _runner(glip)
    hook.before_train(runner)
    hook.after_val_epoch(SimpleNamespace(iter=10),
                         {'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5})
    card = _save(glip, hook, runner)['meta'][CARD_KEY]
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
    same = _base_file(glip, tmp_path / 'base.pth')
    other = _base_file(glip, tmp_path / 'other.pth', perturb=True)
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
    other = _base_file(glip, tmp_path / 'other.pth', perturb=True)
    runner = _runner(glip, load_from='p.pth', base_weights=other)
    with pytest.raises(BaseWeightsMismatch):
        PromptTuningHook().after_load_checkpoint(runner, dict(checkpoint))
    runner.cfg['allow_base_mismatch'] = True
    PromptTuningHook().after_load_checkpoint(runner, dict(checkpoint))


def test_checkpoint_without_a_card_loads_with_a_warning(glip, tmp_path,
                                                        monkeypatch):
    import projects.sdpt.checkpoint.prompt_checkpoint as prompt_card
    warnings = []
    monkeypatch.setattr(prompt_card, 'print_log',
                        lambda msg, **kw: warnings.append((msg, kw)))
    old = _save(glip)
    del old['meta'][CARD_KEY]  # saved before cards existed
    base = _base_file(glip, tmp_path / 'base.pth')
    merged = complete_prompt_checkpoint(old, glip, base, 'old.pth')
    assert 'prompt_tuning.prototypes.layer0.tokens' in merged
    (message, kwargs), = warnings
    assert 'old.pth carries no prompt card' in message
    assert 'cannot be checked' in message and kwargs['level'] == 30


def test_prompt_info_prints_the_card(glip, tmp_path, capsys):
    import sys
    from conftest import REPO_ROOT
    sys.path.insert(0, f'{REPO_ROOT}/tools')
    import prompt_info
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
