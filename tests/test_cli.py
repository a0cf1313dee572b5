"""What the tools share (projects/sdpt/cli.py), seen from the command line:
bad checkpoints, a missing text encoder or base weights and a broken
training set each give one message and exit status 1, no stack trace; bad
data stops a training run before it starts."""
import importlib
import json
import time

import pytest
from helpers import DEMO_CONFIGS, run

from projects.sdpt.cli import import_optional, name_value_pairs, parse_tasks

GLIP = DEMO_CONFIGS['glip']
pytestmark = pytest.mark.slow  # every test runs a tool


def test_tools_report_bad_checkpoints_without_a_stack_trace(
        workspace, tmp_path):
    base = workspace / 'data' / 'demo' / 'glip_tiny_base.pth'
    res = run('test.py', GLIP, base, '--work-dir', tmp_path, cwd=workspace,
              ok=False)
    assert res.code == 1 and 'Traceback' not in res.out, res.out[-3000:]
    assert 'PromptCheckpointMismatch' in res.out and \
        'holds no prompt parameters' in res.out
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(base.read_bytes()[:1000])
    res = run('test.py', GLIP, broken, '--work-dir', tmp_path, cwd=workspace,
              ok=False)
    assert res.code == 1 and 'Traceback' not in res.out, res.out[-3000:]
    assert f'{broken} is truncated or corrupt' in res.out


def test_missing_bert_offline_says_how_to_provide_it(workspace, tmp_path):
    res = run('print_trainable.py', GLIP, '--lang-model', 'bert-base-uncased',
              cwd=workspace, ok=False, HF_HUB_OFFLINE='1',
              HF_HOME=str(tmp_path / 'empty-hf-cache'))
    assert res.code == 1 and 'Traceback' not in res.out, res.out[-3000:]
    assert "The text encoder 'bert-base-uncased' is not a local directory" \
        in res.out
    assert "save_pretrained('DIR')" in res.out
    assert 'model.detector.language_model.name=DIR' in res.out


def test_missing_base_weights_say_what_is_missing(workspace, tmp_path):
    missing = tmp_path / 'glip_l.pth'
    res = run('train.py', GLIP, '--work-dir', tmp_path, '--cfg-options',
              f'load_from={missing}', f'base_weights={missing}',
              cwd=workspace, ok=False)
    assert res.code == 1 and 'Traceback' not in res.out, res.out[-3000:]
    assert f'base_weights = {missing}: no such file' in res.out
    assert 'load_from=PATH base_weights=PATH' in res.out


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
    res = run('train.py', GLIP, '--work-dir', tmp_path / 'work',
              '--cfg-options', f'train_dataloader.dataset.ann_file={ann}',
              cwd=workspace, ok=False)
    assert res.code == 1 and 'Traceback' not in res.out, res.out[-3000:]
    assert 'ERROR [unknown-category]' in res.out and str(ann) in res.out
    assert 'ERROR [missing-image]' in res.out and 'gone.png' in res.out
    assert 'Iter(train)' not in res.out and '--skip-data-check' in res.out
    assert time.monotonic() - start < 120


def test_name_value_items_and_tasks_are_parsed_or_refused():
    assert name_value_pairs(['a=1', 'b=x=y'], '--lr') == {'a': '1',
                                                         'b': 'x=y'}
    assert name_value_pairs(['sdpt=0.5'], '--lr', {'sdpt'}, float) == {
        'sdpt': 0.5}
    for bad in ('a', '=1', 'a=', 'text=0.1'):
        with pytest.raises(SystemExit, match='expected NAME=VALUE'):
            name_value_pairs([bad], '--lr', {'a', 'sdpt'} if bad ==
                             'text=0.1' else None)
    with pytest.raises(SystemExit, match="'sdpt=x'"):
        name_value_pairs(['sdpt=x'], '--lr', None, float)
    assert parse_tasks(['pets=p.pth', 'tools=t.pth'], ['pets=cat,dog']) == (
        {'pets': 'p.pth', 'tools': 't.pth'}, {'pets': ['cat', 'dog']})
    with pytest.raises(SystemExit, match='--task-texts cars: no --task'):
        parse_tasks(['pets=p.pth'], ['cars=car'])


def test_an_optional_dependency_missing_says_what_to_install(monkeypatch):
    assert import_optional('json', 'tools/x.py') is json

    def missing(name):
        raise ModuleNotFoundError("No module named 'gradio'", name='gradio')

    monkeypatch.setattr(importlib, 'import_module', missing)
    with pytest.raises(SystemExit, match='tools/serve.py needs gradio: pip '
                       'install -r requirements-serve.txt'):
        import_optional('projects.sdpt.serving.app', 'tools/serve.py')

    def other(name):
        raise ModuleNotFoundError("No module named 'numpyy'", name='numpyy')

    monkeypatch.setattr(importlib, 'import_module', other)
    with pytest.raises(ModuleNotFoundError):
        import_optional('projects.sdpt.serving.app', 'tools/serve.py')
