"""k-shot splits of COCO-format annotation files.

Few-shot splits follow the GLIP / DETReg / TFA convention: ``k`` instances
per class. For each category (in id order) the images that contain it are
shuffled with ``random.Random(seed)`` and taken one by one, keeping only that
category's annotations, while the total stays at most ``k``. If no whole
image fits the remaining count, the next image contributes a random subset of
its instances (noted in the report). The split is the union over categories:
an image picked for several categories appears once, with the union of its
kept annotations. Crowd annotations (``iscrowd=1``) are never used.

Categories with fewer than ``k`` instances keep all they have and are
reported; with ``strict`` they make the call return status 1 instead, and
nothing is written.

The protocol (``run_protocol``) writes every k x seed split as
``<stem>_<k>shot_seed<seed>.json`` (``benchmark_settings.few_shot_name``, the
names the benchmark configs read) plus ``<stem>_few_shot_protocol.json``;
``run_odinw13`` does it for each ODinW13 training file. Every file is written
atomically. Usage::

    from projects.sdpt.datasets.few_shot import (load_coco, make_few_shot,
                                                 run_protocol)
    split, report = make_few_shot(load_coco('train.json'), shots=5, seed=30)
    status, manifest = run_protocol('train.json', [1, 3], [3, 30])

``tools/make_few_shot.py`` is the command line.
"""
import json
import os.path as osp
import random
import sys
from collections import defaultdict

from ..utils.io import atomic_write_json
from .benchmark_settings import ODINW13, few_shot_name

#: Recorded in each split's ``info.few_shot.tool``: what wrote the file.
TOOL = 'tools/make_few_shot.py'


class AnnotationFileError(ValueError):
    """An annotation file that is missing or is not COCO-format JSON."""


def make_few_shot(coco, shots, seed):
    """Return ``(split, report)`` for a loaded COCO dict.

    ``report`` has ``counts`` ({category id: kept instances}), ``short``
    ({category id: available instances} for categories below ``shots``) and
    ``lines`` (human-readable notes).
    """
    if shots < 1:
        raise ValueError(f'shots must be >= 1, got {shots}')
    rng = random.Random(seed)
    # category id -> image id -> that category's non-crowd annotations
    by_cat = defaultdict(lambda: defaultdict(list))
    for ann in sorted(coco['annotations'], key=lambda a: a['id']):
        if not ann.get('iscrowd', 0):
            by_cat[ann['category_id']][ann['image_id']].append(ann)

    kept, counts, short, lines = {}, {}, {}, []
    for cat in sorted(coco['categories'], key=lambda c: c['id']):
        per_img = by_cat.get(cat['id'], {})
        img_ids = sorted(per_img)
        rng.shuffle(img_ids)
        taken = 0
        for img_id in img_ids:
            if taken + len(per_img[img_id]) <= shots:
                for ann in per_img[img_id]:
                    kept[ann['id']] = ann
                taken += len(per_img[img_id])
            if taken == shots:
                break
        if taken < shots:
            # Whole images overshoot: take part of one not used yet.
            for img_id in img_ids:
                anns = per_img[img_id]
                if anns[0]['id'] not in kept and len(anns) > shots - taken:
                    for ann in rng.sample(anns, shots - taken):
                        kept[ann['id']] = ann
                    lines.append(
                        f'note: class "{cat["name"]}" (id {cat["id"]}): image '
                        f'{img_id} keeps {shots - taken} of its {len(anns)} '
                        'instances (no whole image fitted)')
                    taken = shots
                    break
        counts[cat['id']] = taken
        if taken < shots:
            short[cat['id']] = taken
            lines.append(
                f'short: class "{cat["name"]}" (id {cat["id"]}) has only '
                f'{taken} non-crowd instance(s), fewer than {shots} shots')

    anns = sorted(kept.values(), key=lambda a: a['id'])
    img_ids = {a['image_id'] for a in anns}
    split = {k: coco[k] for k in ('info', 'licenses') if k in coco}
    split['images'] = sorted(
        (im for im in coco['images'] if im['id'] in img_ids),
        key=lambda im: im['id'])
    split['annotations'] = anns
    split['categories'] = coco['categories']
    return split, dict(counts=counts, short=short, lines=lines)


def load_coco(path):
    """The COCO dict in ``path``; ``AnnotationFileError`` (the path and how
    to fix it) when it is missing, not JSON or lacks a COCO key."""
    if not osp.isfile(path):
        raise AnnotationFileError(
            f'Annotation file not found: {path}. '
            'Check the path (relative to the current directory).')
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationFileError(f'{path} is not valid JSON ({e}). '
                                  'Give a COCO-format annotation file.')
    missing = [k for k in ('images', 'annotations', 'categories')
               if not isinstance(coco, dict) or k not in coco]
    if missing:
        raise AnnotationFileError(
            f'{path} is not a COCO annotation file: missing key(s) '
            f'{", ".join(missing)}. A COCO file needs "images", '
            '"annotations" and "categories".')
    return coco


def _with_info(split, ann_file, shots, seed):
    """``split`` with ``info.few_shot`` saying where it comes from."""
    info = dict(split.get('info') or {})
    info['few_shot'] = dict(source=osp.abspath(ann_file), shots=shots,
                            seed=seed, tool=TOOL)
    split['info'] = info
    return split


def write_split(ann_file, shots, seed, out, strict=False):
    """Write the ``shots`` x ``seed`` split of ``ann_file`` to ``out`` and
    print what it kept; return the exit status (1: ``strict`` and a class
    is short, nothing written)."""
    coco = load_coco(ann_file)
    split, report = make_few_shot(coco, shots, seed)
    for line in report['lines']:
        print(line)
    if strict and report['short']:
        print(f'error: {len(report["short"])} class(es) have fewer than '
              f'{shots} instances; nothing written (--strict)',
              file=sys.stderr)
        return 1
    # Compact: a split of a large training file is itself large.
    atomic_write_json(_with_info(split, ann_file, shots, seed), out,
                      indent=None)
    names = {c['id']: c['name'] for c in split['categories']}
    print(f'wrote {out}: {len(split["images"])} images, '
          f'{len(split["annotations"])} annotations')
    for cid, n in report['counts'].items():
        print(f'  {names[cid]} (id {cid}): {n}')
    return 0


def run_protocol(ann_file, shots_list, seeds, out_dir=None, strict=False,
                 title=None):
    """Write every k x seed split of ``ann_file``; return (status, manifest).

    Nothing is written when ``strict`` and a class is short of some k.
    """
    coco = load_coco(ann_file)
    out_dir = out_dir or osp.dirname(osp.abspath(ann_file))
    names = {c['id']: c['name'] for c in coco['categories']}
    stem = osp.basename(ann_file)
    splits, short = [], {}
    for shots in shots_list:
        for seed in seeds:
            split, report = make_few_shot(coco, shots, seed)
            out = osp.join(out_dir, few_shot_name(stem, shots, seed))
            splits.append((out, _with_info(split, ann_file, shots, seed),
                           shots, seed, report))
            for cid, n in report['short'].items():
                short.setdefault(shots, {})[names[cid]] = n
    print(f'== {title or ann_file}: {len(coco["categories"])} classes, '
          f'k in {list(shots_list)}, seeds {list(seeds)}')
    for shots, classes in sorted(short.items()):
        print(f'short: k={shots}: {len(classes)} class(es) with fewer than '
              f'{shots} non-crowd instances (kept all they have): '
              + ', '.join(f'"{n}" ({c})' for n, c in sorted(classes.items())))
    manifest = dict(
        source=osp.abspath(ann_file), shots=list(shots_list),
        seeds=list(seeds),
        short={str(k): v for k, v in sorted(short.items())},
        splits=[dict(file=osp.basename(out), shots=shots, seed=seed,
                     images=len(split['images']),
                     annotations=len(split['annotations']),
                     notes=report['lines'])
                for out, split, shots, seed, report in splits])
    if strict and short:
        print(f'error: {title or ann_file}: classes short of k (above); '
              'nothing written (--strict)', file=sys.stderr)
        return 1, manifest
    for out, split, shots, seed, _ in splits:
        atomic_write_json(split, out, indent=None)
        print(f'wrote {out}: {len(split["images"])} images, '
              f'{len(split["annotations"])} annotations')
    manifest_path = osp.join(
        out_dir, osp.splitext(stem)[0] + '_few_shot_protocol.json')
    atomic_write_json(manifest, manifest_path)
    print(f'wrote {manifest_path}')
    return 0, manifest


def run_odinw13(root, shots_list, seeds, strict=False):
    """The protocol for each ODinW13 dataset's training file under root;
    return the exit status.

    ``AnnotationFileError`` before anything is written when a training file
    is missing. With ``strict``, a dataset with short classes is skipped
    (nothing written for it) and the status is 1.
    """
    missing = [osp.join(root, info['root'], info['train_ann'])
               for info in ODINW13.values()]
    missing = [path for path in missing if not osp.isfile(path)]
    if missing:
        raise AnnotationFileError(
            f'ODinW13 training file(s) not found under {root}: '
            + '; '.join(missing))
    status = 0
    for name, info in ODINW13.items():
        ann = osp.join(root, info['root'], info['train_ann'])
        status |= run_protocol(ann, shots_list, seeds, strict=strict,
                               title=name)[0]
    return status
