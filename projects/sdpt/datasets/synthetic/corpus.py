"""A synthetic grounding corpus: a source domain to pretrain tiny bases on,
and four target *shifts*, each needing a different kind of adaptation.

No real weights or data can be downloaded on every machine this toolbox runs
on (CI, air-gapped clusters), yet prompt tuning only means something on top of
a base that already grounds words in pixels. This corpus lets the project
pretrain a tiny GLIP / Grounding DINO itself and then measure few-shot
transfer.

Objects are coloured shapes named by ``"<colour> <shape>"`` phrases (4 colours
x 4 shapes). Each image's caption is the category prompt, as in GLIP's
detection-data pretraining (``"red circle. green square. ..."``).

* **source** (pretraining): 12 of the 16 phrases, flat-filled shapes on a grey
  noise background, shape sizes 20-50 % of the image.
* **shifts** (transfer): four k-shot tasks of 4 classes each, every one with
  its own train pool (the k-shot splits are drawn from it), dev split (for
  choosing hyper-parameters) and test split:

  ============  =================================  ==========================
  shift         what the base lacks                 the task
  ============  =================================  ==========================
  vocabulary    the *names*: seen objects under     4 source objects called
                words it never read                 "crimson ring", ...
  composition   the *pairs*: seen words, new        the 4 held-out phrases,
                combinations                        source look
  appearance    the *look*: seen phrases, new       4 source phrases, striped,
                rendering                           smaller, new background
  realignment   the *alignment*: seen words that    colour words swapped:
                now mean something else             "red square" is blue
  ============  =================================  ==========================

  Where the base has names for the task's objects (vocabulary, re-alignment)
  a shift records them as ``base_names``: evaluating the base with those
  names is the text-side oracle, what re-aligning the text alone could reach.

``make_synthetic_corpus(root)`` writes, idempotently::

    root/bert/                           tiny BERT whose vocabulary has every
                                         word of every phrase (hidden 768:
                                         Grounding DINO's base)
    root/bert_h256/                      the same at hidden 256 (GLIP's base)
    root/source/{train,val}/*.png        + annotations/instances_<split>.json
    root/shifts/<shift>/{train,dev,test}/*.png  + annotations/...
"""
import json
import os
import os.path as osp
import random
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

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
# pretraining, no held-out phrase is.
HELD_OUT_CLASSES = ('red triangle', 'green cross', 'blue circle',
                    'yellow square')
SOURCE_CLASSES = tuple(f'{c} {s}' for c in COLOURS for s in SHAPES
                       if f'{c} {s}' not in HELD_OUT_CLASSES)

SOURCE_LOOK = dict(texture='flat', background='noise', size_range=(0.2, 0.5))
NEW_LOOK = dict(texture='stripes', background='gradient',
                size_range=(0.15, 0.4))
# One seen phrase per colour and per shape.
SEEN_CLASSES = ('red circle', 'green square', 'blue triangle',
                'yellow cross')


@dataclass(frozen=True)
class Shift:
    """One transfer task of the corpus.

    ``drawn[i]`` is the phrase whose colour and shape class ``i`` is drawn
    with, ``classes[i]`` its name in the task; ``base_names`` the names the
    base learnt for those objects, where it has any.
    """
    name: str
    needs: str  # the kind of adaptation, for reports
    drawn: Tuple[str, ...]
    classes: Tuple[str, ...]
    look: Dict
    base_names: Optional[Tuple[str, ...]] = None


SHIFTS = {
    shift.name: shift
    for shift in (
        Shift('vocabulary', 'new names for seen objects', SEEN_CLASSES,
              ('crimson ring', 'jade block', 'azure wedge', 'amber plus'),
              SOURCE_LOOK, base_names=SEEN_CLASSES),
        Shift('composition', 'new pairs of seen words', HELD_OUT_CLASSES,
              HELD_OUT_CLASSES, SOURCE_LOOK),
        Shift('appearance', 'a new look of seen phrases', SEEN_CLASSES,
              SEEN_CLASSES, NEW_LOOK),
        # red <-> blue and green <-> yellow: every name and every drawn
        # object is a source phrase, only their pairing moves.
        Shift('realignment', 'seen words with swapped meanings',
              ('blue square', 'red square', 'yellow circle', 'green circle'),
              ('red square', 'blue square', 'green circle', 'yellow circle'),
              SOURCE_LOOK, base_names=('blue square', 'red square',
                                       'yellow circle', 'green circle')),
    )
}
# The corpus's text encoders, by folder: each base's language model starts
# from one (random weights; pretraining trains them). GLIP's VLFuse and head
# work at the text width, so a narrower one keeps its base under 30 MB.
CORPUS_BERTS = {'bert': 768, 'bert_h256': 256}
SOURCE_SPLITS = ('train', 'val')
SHIFT_SPLITS = ('train', 'dev', 'test')
DEFAULT_COUNTS = {
    'source': dict(train=2000, val=64),
    'shift': dict(train=120, dev=32, test=64),
}


BASE_NAMES_SUFFIX = '_base_names'


def shift_dir(root: str, shift: str) -> str:
    return osp.join(root, 'shifts', shift)


def base_names_ann_file(ann_file: str) -> str:
    """The same split with the base's names for its classes (the oracle)."""
    stem, ext = osp.splitext(ann_file)
    return stem + BASE_NAMES_SUFFIX + ext


def corpus_words() -> Tuple[str, ...]:
    return tuple(sorted({w for shift in SHIFTS.values()
                         for c in SOURCE_CLASSES + shift.classes
                         for w in c.split()}))


def _background(rng, size: int, kind: str):
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


def write_split(out_dir: str, split: str, count: int, drawn: Sequence[str],
                classes: Sequence[str], look: Dict, size: int,
                seed_key: str, description: str) -> str:
    """Write one split in COCO format; returns the annotation file.

    Class ``i`` is named ``classes[i]`` and drawn as ``drawn[i]``.
    """
    ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    if osp.exists(ann_file):
        return ann_file
    rng = random.Random(seed_key)
    os.makedirs(osp.join(out_dir, split), exist_ok=True)
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    images, annotations = [], []
    for img_id in range(1, count + 1):
        img, objects = render_image(rng, size, drawn, look['texture'],
                                    look['background'], look['size_range'])
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
        dict(info=dict(description=description, version='2'),
             licenses=[], images=images, annotations=annotations,
             categories=categories), ann_file, indent=None)
    return ann_file


def make_synthetic_corpus(root: str = 'data/synthetic',
                          counts: Dict[str, Dict[str, int]] = None,
                          size: int = 64, seed: int = 0,
                          shifts: Sequence[str] = tuple(SHIFTS)) -> str:
    """Write the tiny BERTs, the source domain and the ``shifts`` under
    ``root`` (idempotent: finished splits are kept)."""
    counts = counts or DEFAULT_COUNTS
    for name, hidden_size in CORPUS_BERTS.items():
        make_tiny_bert(osp.join(root, name), hidden_size=hidden_size,
                       extra_words=corpus_words())
    # Different seeds per (domain, split) keep the splits disjoint draws.
    for split in SOURCE_SPLITS:
        write_split(osp.join(root, 'source'), split,
                    counts['source'][split], SOURCE_CLASSES, SOURCE_CLASSES,
                    SOURCE_LOOK, size, f'{seed}-source-{split}',
                    f'synthetic corpus, source domain, {split}')
    for name in shifts:
        shift = SHIFTS[name]
        for split in SHIFT_SPLITS:
            ann_file = write_split(
                shift_dir(root, name), split, counts['shift'][split],
                shift.drawn, shift.classes, shift.look, size,
                f'{seed}-{name}-{split}',
                f'synthetic corpus, {name} shift, {split}')
            if shift.base_names and split == 'test':
                _write_renamed(ann_file, shift.base_names)
    return root


def _write_renamed(ann_file: str, names: Sequence[str]) -> str:
    """``ann_file`` with its categories renamed to ``names`` (in order)."""
    out = base_names_ann_file(ann_file)
    if not osp.exists(out):
        with open(ann_file) as f:
            coco = json.load(f)
        for category, name in zip(coco['categories'], names):
            category['name'] = name
        atomic_write_json(coco, out, indent=None)
    return out
