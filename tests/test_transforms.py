"""The training transforms (projects/sdpt/datasets/transforms.py): a class
list longer than the text encoder's 256 tokens trains through
ClassSubsetPrompt."""
import random

import pytest
import torch
from helpers import build_model, long_class_list
from mmdet.datasets import CocoDataset
from mmengine.dataset import pseudo_collate

from projects.sdpt.datasets.transforms import ClassSubsetPrompt


@pytest.mark.slow
def test_class_subset_prompt_trains_on_a_long_class_list(demo_root):
    """Training with a class list > 256 tokens: each image's caption fits,
    keeps its positives, labels follow, and the prompts get gradients."""
    model, cfg = build_model('glip', demo_root)
    bert = cfg.model.detector.language_model.name
    classes = ('circle', 'square', 'triangle') + long_class_list(300)
    pipeline = [t for t in cfg.train_pipeline if t['type'] != 'RandomFlip']
    pipeline.insert(-1, dict(type='ClassSubsetPrompt', tokenizer=bert,
                             max_tokens=256))
    shapes = demo_root / 'data' / 'demo' / 'shapes'
    dataset = CocoDataset(
        data_root=str(shapes), ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), metainfo=dict(classes=classes),
        pipeline=pipeline, return_classes=True)
    raw = CocoDataset(
        data_root=str(shapes), ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), metainfo=dict(classes=classes),
        pipeline=[], return_classes=True)
    random.seed(0)
    items = [dataset[i] for i in (0, 1)]
    for i, item in enumerate(items):
        sample = item['data_samples']
        text = sample.text
        caption, _ = model.to_plain_text_prompts(text)
        assert len(model.language_model.tokenizer(caption)['input_ids']) \
            <= 256
        assert len(text) > 3 and len(set(text)) == len(text)
        names = [classes[inst['bbox_label']]
                 for inst in raw.get_data_info(i)['instances']]
        assert sorted(text[lb] for lb in sample.gt_instances.labels) == \
            sorted(names)
    # seeded: the same draw again
    random.seed(0)
    assert dataset[0]['data_samples'].text == items[0]['data_samples'].text
    t = ClassSubsetPrompt(tokenizer=bert, max_tokens=256)
    assert t.cost('circle') == 2  # "circle" + "."

    model.train()
    data = model.data_preprocessor(pseudo_collate(items), training=True)
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
