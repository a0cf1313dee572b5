"""Offline assets for the demo configs and the tests.

Nothing is downloaded: a tiny BERT (random weights, a small uncased WordPiece
vocabulary) is written with ``save_pretrained``, and a synthetic COCO-format
detection set of coloured shapes is drawn with PIL. ``make_demo_assets(root)``
writes everything the demo configs read under ``root`` (default
``data/demo``) and is idempotent.

Layout::

    root/bert/                      tiny BERT + tokenizer (hidden 768, 1 layer;
                                    GLIP's VLFuse fixes the text width to 768)
    root/shapes/{train,val}/*.png   images
    root/shapes/annotations/instances_{train,val}.json
"""
import os
import os.path as osp
import random
import shutil
import string
import tempfile
from typing import Dict, List

import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from PIL import Image, ImageDraw
from transformers import BertConfig, BertModel, BertTokenizer

from ...detectors.text_encoder import set_text_encoder
from ...utils.io import atomic_torch_save, atomic_write_json

CLASSES = ('circle', 'square', 'triangle')
COLOURS = {'red': (220, 40, 40), 'green': (40, 180, 60), 'blue': (50, 80,
                                                                   220),
           'yellow': (230, 210, 40)}


def _vocab(extra_words=()) -> List[str]:
    words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    words += list(string.punctuation)
    words += list(string.ascii_lowercase) + list(string.digits)
    words += ['##' + c for c in string.ascii_lowercase + string.digits]
    base = ['a', 'an', 'the', 'of', 'and', 'person', 'car', 'dog', 'cat']
    for w in list(CLASSES) + list(COLOURS) + base + list(extra_words):
        if w not in words:
            words.append(w)
    return words


def make_tiny_bert(out_dir: str,
                   hidden_size: int = 768,
                   num_layers: int = 1,
                   extra_words=()) -> str:
    """Write a randomly initialised BERT (seeded: the same weights every
    time) and its tokenizer to ``out_dir``, unless it holds one. It is
    written beside and moved into place whole, so that an interrupted write
    leaves no half model behind."""
    if osp.exists(osp.join(out_dir, 'config.json')):
        return out_dir
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(out_dir)}.', dir=parent)
    try:
        _write_tiny_bert(tmp, hidden_size, num_layers, extra_words)
        # what an interrupted write of an older version left there
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _write_tiny_bert(out_dir, hidden_size, num_layers, extra_words) -> None:
    vocab_file = osp.join(out_dir, 'vocab.txt')
    with open(vocab_file, 'w') as f:
        f.write('\n'.join(_vocab(extra_words)) + '\n')
    tokenizer = BertTokenizer(vocab_file, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(tokenizer.vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        # BERT's 64-wide heads (12 at 768)
        num_attention_heads=max(1, hidden_size // 64),
        intermediate_size=512,
        max_position_embeddings=512)
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out_dir)
    torch.random.set_rng_state(state)
    tokenizer.save_pretrained(out_dir)


def make_shapes_dataset(root: str,
                        num_images: Dict[str, int] = None,
                        size: int = 128,
                        seed: int = 0) -> str:
    """Draw a COCO-format set of circles, squares and triangles.

    Each image has 1-3 shapes of random colour and size on a noisy
    background; boxes are exact. Returns ``root``.
    """
    num_images = num_images or dict(train=16, val=8)
    done = osp.join(root, 'annotations', 'instances_val.json')
    if osp.exists(done):
        return root
    rng = random.Random(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [
        dict(id=i + 1, name=name, supercategory='shape')
        for i, name in enumerate(CLASSES)
    ]
    for split, count in num_images.items():
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for img_id in range(1, count + 1):
            img = Image.new('RGB', (size, size))
            px = img.load()
            for y in range(size):
                for x in range(size):
                    g = rng.randint(90, 140)
                    px[x, y] = (g, g, g)
            draw = ImageDraw.Draw(img)
            for _ in range(rng.randint(1, 3)):
                cat = rng.randrange(len(CLASSES))
                w = rng.randint(size // 5, size // 2)
                x0 = rng.randint(0, size - w - 1)
                y0 = rng.randint(0, size - w - 1)
                colour = rng.choice(list(COLOURS.values()))
                box = [x0, y0, x0 + w, y0 + w]
                if CLASSES[cat] == 'circle':
                    draw.ellipse(box, fill=colour)
                elif CLASSES[cat] == 'square':
                    draw.rectangle(box, fill=colour)
                else:
                    draw.polygon([(x0, y0 + w), (x0 + w, y0 + w),
                                  (x0 + w / 2, y0)],
                                 fill=colour)
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=img_id,
                        category_id=cat + 1,
                        bbox=[x0, y0, w, w],
                        area=float(w * w),
                        iscrowd=0))
            name = f'{split}_{img_id:04d}.png'
            img.save(osp.join(root, split, name))
            images.append(
                dict(id=img_id, file_name=name, width=size, height=size))
        atomic_write_json(
            dict(
                # pycocotools >= 2.0.9 reads ``info`` with results
                info=dict(description=f'demo shapes, {split}'),
                licenses=[],
                images=images,
                annotations=annotations,
                categories=categories),
            osp.join(root, 'annotations', f'instances_{split}.json'),
            indent=None)
    return root


def make_base_weights(config_path: str, out_file: str, bert_dir: str) -> str:
    """Save the initial weights of a demo config's detector as its base.

    The demo's base model is random (no pretrained tiny base yet); saving it
    once gives training and testing the same base through ``load_from``.
    """
    if osp.exists(out_file):
        return out_file
    register_all_modules()
    cfg = Config.fromfile(config_path)
    detector_cfg = cfg.model.get('detector', cfg.model)
    # the tiny BERT written for this root, not the config's default path
    set_text_encoder(detector_cfg, bert_dir)
    torch.manual_seed(0)
    model = MODELS.build(detector_cfg)
    model.init_weights()
    atomic_torch_save({'state_dict': model.state_dict(), 'meta': {}},
                      out_file)
    return out_file


def make_demo_assets(root: str = 'data/demo') -> str:
    make_tiny_bert(osp.join(root, 'bert'))
    make_shapes_dataset(osp.join(root, 'shapes'))
    return root
