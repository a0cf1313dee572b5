"""A synthetic grounding corpus with a source and a shifted target domain.

No real weights or data can be downloaded on every machine this toolbox runs
on (CI, air-gapped clusters), yet prompt tuning only means something on top of
a base that already grounds words in pixels. This corpus lets the project
pretrain a tiny GLIP / Grounding DINO itself and then measure few-shot
transfer.

Categories are compositional phrases, ``"<colour> <shape>"`` (4 colours x 4
shapes). Each image's caption is the category prompt, as in GLIP's
detection-data pretraining (``"red circle. green square. ..."``).

* **source** (pretraining): 12 of the 16 phrases, flat-filled shapes on a grey
  noise background, shape sizes 20-50 % of the image.
* **target** (transfer): the 4 held-out phrases (each colour and each shape is
  seen in pretraining, never the pair: new classes with known words), drawn
  with a new appearance: striped fills on a textured gradient background, and
  smaller shapes (15-40 %).

``make_synthetic_corpus(root)`` writes, idempotently::

    root/bert/                        tiny BERT whose vocabulary has every word
    root/source/{train,val}/*.png     + annotations/instances_{train,val}.json
    root/target/{train,val}/*.png     + annotations/instances_{train,val}.json

The target ``train`` split is the pool few-shot splits are sampled from
(``tools/make_few_shot.py``); its ``val`` split is the benchmark's test set.
"""
import os
import os.path as osp
import random
import shutil
from typing import Dict, Sequence, Tuple

from ...utils.io import atomic_write_json
from .demo_assets import make_tiny_bert

COLOURS = {
    'red': (215, 45, 45),
    'green': (40, 170, 70),
    'blue': (55, 85, 220),
    'yellow': (225, 205, 40),
}
SHAPES = ('circle', 'square', 'triangle', 'cross')
# One held-out pair per colour and per shape: every word is seen in
# pretraining, no target phrase is.
TARGET_CLASSES = ('red triangle', 'green cross', 'blue circle',
                  'yellow square')
SOURCE_CLASSES = tuple(f'{c} {s}' for c in COLOURS for s in SHAPES
                       if f'{c} {s}' not in TARGET_CLASSES)

DOMAINS = {
    'source': dict(classes=SOURCE_CLASSES, texture='flat',
                   background='noise', size_range=(0.2, 0.5)),
    'target': dict(classes=TARGET_CLASSES, texture='stripes',
                   background='gradient', size_range=(0.15, 0.4)),
}
DEFAULT_COUNTS = {
    'source': dict(train=1200, val=64),
    'target': dict(train=120, val=64),
}


def _background(rng, size: int, kind: str):
    import numpy as np
    nprng = np.random.default_rng(rng.randrange(2**31))
    if kind == 'noise':
        grey = nprng.integers(90, 141, size=(size, size), dtype=np.int16)
        img = np.repeat(grey[..., None], 3, axis=2)
    else:  # a tinted diagonal gradient with coarser noise
        ramp = np.add.outer(np.arange(size), np.arange(size)) / (2 * size)
        tint = np.array([rng.randint(60, 160) for _ in range(3)])
        img = 60 + ramp[..., None] * tint[None, None, :]
        img = img + nprng.integers(-25, 26, size=(size, size, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_shape(draw, shape: str, x0: int, y0: int, w: int) -> None:
    x1, y1 = x0 + w, y0 + w
    if shape == 'circle':
        draw.ellipse([x0, y0, x1, y1], fill=255)
    elif shape == 'square':
        draw.rectangle([x0, y0, x1, y1], fill=255)
    elif shape == 'triangle':
        draw.polygon([(x0, y1), (x1, y1), (x0 + w / 2, y0)], fill=255)
    elif shape == 'cross':
        t = max(2, w // 3)
        c0, c1 = x0 + (w - t) // 2, x0 + (w + t) // 2
        r0, r1 = y0 + (w - t) // 2, y0 + (w + t) // 2
        draw.rectangle([c0, y0, c1, y1], fill=255)
        draw.rectangle([x0, r0, x1, r1], fill=255)
    else:
        raise ValueError(f'unknown shape {shape!r}; known: {SHAPES}')


def render_image(rng: random.Random, size: int, classes: Sequence[str],
                 texture: str, background: str,
                 size_range: Tuple[float, float], max_objects: int = 3):
    """One image (H x W x 3 uint8) and its objects ``(class_index, xywh)``.

    Objects are placed without overlapping so that every box is fully
    visible.
    """
    import numpy as np
    from PIL import Image, ImageDraw
    img = _background(rng, size, background)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = ((xx + yy) // 3) % 2 == 0
    objects, taken = [], []
    for _ in range(rng.randint(1, max_objects)):
        for _attempt in range(20):
            w = rng.randint(int(size * size_range[0]),
                            int(size * size_range[1]))
            x0 = rng.randint(0, size - w - 1)
            y0 = rng.randint(0, size - w - 1)
            box = (x0, y0, x0 + w, y0 + w)
            if all(box[2] <= t[0] or t[2] <= box[0] or box[3] <= t[1]
                   or t[3] <= box[1] for t in taken):
                break
        else:
            continue
        taken.append(box)
        label = rng.randrange(len(classes))
        colour_name, shape = classes[label].split(' ')
        mask_img = Image.new('L', (size, size), 0)
        _draw_shape(ImageDraw.Draw(mask_img), shape, x0, y0, w)
        mask = np.asarray(mask_img) > 0
        colour = np.array(COLOURS[colour_name])
        if texture == 'stripes':
            dark = mask & ~stripes
            img[mask & stripes] = colour
            img[dark] = (colour * 0.45).astype(np.uint8)
        else:
            img[mask] = colour
        objects.append((label, [x0, y0, w, w]))
    return img, objects


def make_domain_split(out_dir: str, domain: str, split: str, count: int,
                      size: int, seed: int) -> str:
    """Write one split of one domain in COCO format; returns the json path."""
    from PIL import Image
    spec = DOMAINS[domain]
    classes = spec['classes']
    ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    if osp.exists(ann_file):
        return ann_file
    # Different seeds per (domain, split) keep the splits disjoint draws.
    rng = random.Random(f'{seed}-{domain}-{split}')
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    images, annotations = [], []
    for img_id in range(1, count + 1):
        img, objects = render_image(
            rng, size, classes, spec['texture'], spec['background'],
            spec['size_range'])
        name = f'{split}_{img_id:05d}.png'
        Image.fromarray(img).save(osp.join(out_dir, split, name))
        images.append(dict(id=img_id, file_name=name, width=size,
                           height=size))
        for label, bbox in objects:
            annotations.append(
                dict(id=len(annotations) + 1, image_id=img_id,
                     category_id=label + 1, bbox=bbox,
                     area=float(bbox[2] * bbox[3]), iscrowd=0))
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(classes)]
    # The annotation file is written last and atomically: its presence
    # marks a complete split. ``info``: pycocotools >= 2.0.9 reads it when
    # loading results.
    atomic_write_json(
        dict(info=dict(description=f'synthetic corpus, {domain} domain, '
                       f'{split}', version='1'),
             licenses=[], images=images, annotations=annotations,
             categories=categories), ann_file, indent=None)
    return ann_file


def make_synthetic_corpus(root: str = 'data/synthetic',
                          counts: Dict[str, Dict[str, int]] = None,
                          size: int = 64, seed: int = 0) -> str:
    """Write the tiny BERT and both domains under ``root`` (idempotent)."""
    counts = counts or DEFAULT_COUNTS
    words = sorted({w for c in SOURCE_CLASSES + TARGET_CLASSES
                    for w in c.split()})
    bert_dir = osp.join(root, 'bert')
    if not osp.exists(osp.join(bert_dir, 'config.json')):
        tmp = bert_dir + '.tmp'
        shutil.rmtree(tmp, ignore_errors=True)
        make_tiny_bert(tmp, extra_words=words)
        os.replace(tmp, bert_dir)
    for domain, splits in counts.items():
        for split, count in splits.items():
            make_domain_split(osp.join(root, domain), domain, split, count,
                              size, seed)
    return root
