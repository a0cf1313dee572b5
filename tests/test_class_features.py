"""Learned class features (projects/sdpt/methods/class_features.py): each
class's name becomes M placeholders whose text-encoder output features are
that class's learned vectors; label names stay the class names; classes=None
in a config takes the training set's; the prompt checkpoint exports to one
file per class."""
import pytest
import torch
from helpers import SHAPES, build_method, run, save_prompt_checkpoint
from mmengine.config import Config

from projects.sdpt.checkpoint import PromptCheckpointMismatch
from projects.sdpt.checkpoint.class_feature_files import (
    class_feature_file_name,
    export_class_features,
)
from projects.sdpt.engine.config import dataset_classes, load_config
from projects.sdpt.experiments.zoo import zoo_config

PROMPT = dict(type='LearnedClassFeatures', num_tokens=3, classes=SHAPES)


@pytest.mark.parametrize('name', ['glip', 'gdino'])
def test_placeholders_take_each_class_name_and_its_features(name,
                                                            demo_root):
    model, _ = build_method(name, demo_root, PROMPT)
    method = model.prompt_tuning
    # a caption of the classes in another order: each run gets its class
    order = ['triangle', 'circle', 'square']
    _, caption, tokens_positive, entities = model.get_tokens_and_prompts(
        order, True)
    run = ' '.join(['[MASK]'] * 3)
    # (Grounding DINO ends its caption with '. ')
    assert caption.rstrip('. ') == f'{run}. {run}. {run}'
    # the class spans cover the placeholders, the label names stay
    assert [caption[s:e] for [[s, e]] in tokens_positive] == [run] * 3
    assert entities == order
    encoder = method.adapter.text_encoder(model)
    seen = []
    handle = encoder.register_forward_hook(
        lambda m, i, o: seen.append((i[0]['input_ids'], o)))
    method.enabled = False
    plain = model.language_model([caption])
    method.enabled = True
    features = model.language_model([caption])
    handle.remove()
    ids = seen[1][0][0]
    placeholders = (ids == method.placeholder_id).nonzero().flatten()
    assert len(placeholders) == 3 * 3
    for i, pos in enumerate(placeholders.tolist()):
        run_index, index = divmod(i, 3)
        expected = method.features[SHAPES.index(order[run_index]), index]
        for key in ('embedded', 'hidden'):
            torch.testing.assert_close(features[key][0, pos], expected,
                                       rtol=0, atol=0)
    others = ids != method.placeholder_id
    for key in ('embedded', 'hidden'):
        assert torch.equal(features[key][0][others], plain[key][0][others])
    # off: the base's caption
    method.enabled = False
    assert model.get_tokens_and_prompts(order, True)[1].rstrip('. ') == \
        'triangle. circle. square'


@pytest.mark.parametrize('name', ['glip', 'gdino'])
def test_a_class_outside_the_list_keeps_the_bases_features(name, demo_root):
    """Tuned and typed classes mix: a class the vectors were not trained
    for keeps its name, so its features are the base's."""
    model, _ = build_method(name, demo_root, PROMPT)
    method = model.prompt_tuning
    _, caption, tokens_positive, entities = model.get_tokens_and_prompts(
        ['hexagon', 'square'], True)
    run = ' '.join(['[MASK]'] * 3)
    assert caption.rstrip('. ') == f'hexagon. {run}'
    assert [caption[s:e] for [[s, e]] in tokens_positive] == ['hexagon', run]
    assert entities == ['hexagon', 'square']
    seen = []
    handle = method.adapter.text_encoder(model).register_forward_hook(
        lambda m, i, o: seen.append(i[0]['input_ids']))
    features = model.language_model([caption])
    handle.remove()
    ids = seen[0][0]
    placeholders = (ids == method.placeholder_id).nonzero().flatten()
    for i, pos in enumerate(placeholders.tolist()):
        torch.testing.assert_close(features['embedded'][0, pos],
                                   method.features[SHAPES.index('square'), i],
                                   rtol=0, atol=0)
    # CoOp with context per class keeps refusing classes it has none for
    coop, _ = build_method(name, demo_root, dict(
        type='TextContextPrompt', num_context=2, class_specific=True,
        classes=SHAPES))
    with pytest.raises(KeyError, match="'hexagon'.*prompt.classes"):
        coop.get_tokens_and_prompts(['circle', 'hexagon'], True)


def test_classes_none_takes_the_training_sets(tmp_path):
    demo = load_config(zoo_config('class_features', 'gdino'))
    assert demo.model.prompt.classes == ('circle', 'square', 'triangle')
    real = load_config(zoo_config('class_features', 'glip', 'real'))
    assert len(real.model.prompt.classes) == 80  # COCO's, from CocoDataset
    assert real.model.prompt.classes[0] == 'person'
    # wrapped datasets are looked through
    assert dataset_classes(dict(type='RepeatDataset', dataset=dict(
        type='CocoDataset', metainfo=dict(classes=('a', 'b'))))) == ('a', 'b')
    # nothing to take them from: the fields to set are named
    cfg = Config(dict(model=dict(prompt=dict(
        type='LearnedClassFeatures', classes=None))))
    path = tmp_path / 'no_data.py'
    cfg.dump(str(path))
    with pytest.raises(SystemExit, match='model.prompt.classes'):
        load_config(str(path))


def test_export_writes_one_file_per_class(demo_root, tmp_path):
    model, _ = build_method('gdino', demo_root, PROMPT)
    path = tmp_path / 'prompt.pth'
    save_prompt_checkpoint(model, str(path), load_from='base.pth',
                           classes=list(SHAPES))
    files = export_class_features(str(path), str(tmp_path / 'classes'))
    assert list(files) == list(SHAPES)
    for i, name in enumerate(SHAPES):
        saved = torch.load(files[name], weights_only=True)
        assert list(saved) == [name]
        assert torch.equal(saved[name]['embedding'],
                           model.prompt_tuning.features[i].detach())
    # the tool prints only what it wrote: one 'class: file' line each
    out_dir = tmp_path / 'by_tool'
    printed = run('export_class_features.py', str(path), str(out_dir)).stdout
    assert printed.splitlines() == [f'{name}: {out_dir / f"{name}.pth"}'
                                    for name in SHAPES]
    assert class_feature_file_name('traffic light/sign') == \
        'traffic light_sign.pth'
    other, _ = build_method('gdino', demo_root,
                            dict(type='TextContextPrompt', num_context=2))
    save_prompt_checkpoint(other, str(path), load_from='base.pth')
    with pytest.raises(PromptCheckpointMismatch, match='TextContextPrompt'):
        export_class_features(str(path), str(tmp_path / 'other'))
