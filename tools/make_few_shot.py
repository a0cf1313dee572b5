"""Write a k-shot split of a COCO-format annotation file.

Few-shot splits follow the GLIP / DETReg / TFA convention: ``k`` instances
per class.  For each category (in id order) the images that contain it are
shuffled with ``random.Random(seed)`` and taken one by one, keeping only that
category's annotations, while the total stays at most ``k``.  If no whole
image fits the remaining count, the next image contributes a random subset of
its instances (noted in the report).  The split is the union over categories:
an image picked for several categories appears once, with the union of its
kept annotations.  Crowd annotations (``iscrowd=1``) are never used.

Categories with fewer than ``k`` instances keep all they have and are
reported; with ``--strict`` they make the script exit non-zero instead.

Usage::

    python tools/make_few_shot.py ANN_FILE --shots 1 --seed 3 --out OUT.json
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
import tempfile
from collections import defaultdict


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
    if not osp.isfile(path):
        raise SystemExit(f'Annotation file not found: {path}. '
                         'Check the path (relative to the current directory).')
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SystemExit(f'{path} is not valid JSON ({e}). '
                         'Give a COCO-format annotation file.')
    missing = [k for k in ('images', 'annotations', 'categories')
               if not isinstance(coco, dict) or k not in coco]
    if missing:
        raise SystemExit(f'{path} is not a COCO annotation file: missing '
                         f'key(s) {", ".join(missing)}. A COCO file needs '
                         '"images", "annotations" and "categories".')
    return coco


def write_json_atomic(obj, path):
    out_dir = osp.dirname(osp.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix='.tmp_', suffix='.json')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='COCO-format annotation file')
    parser.add_argument('--shots', type=int, required=True,
                        help='instances per class (k)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True, help='output JSON path')
    parser.add_argument('--strict', action='store_true',
                        help='fail if a class has fewer than --shots '
                        'instances instead of keeping what exists')
    args = parser.parse_args(argv)
    if args.shots < 1:
        parser.error(f'--shots must be >= 1, got {args.shots}')

    coco = load_coco(args.ann_file)
    split, report = make_few_shot(coco, args.shots, args.seed)
    for line in report['lines']:
        print(line)
    if args.strict and report['short']:
        print(f'error: {len(report["short"])} class(es) have fewer than '
              f'{args.shots} instances; nothing written (--strict)',
              file=sys.stderr)
        return 1

    info = dict(split.get('info') or {})
    info['few_shot'] = dict(source=osp.abspath(args.ann_file),
                            shots=args.shots, seed=args.seed,
                            tool='tools/make_few_shot.py')
    split['info'] = info
    write_json_atomic(split, args.out)

    names = {c['id']: c['name'] for c in split['categories']}
    print(f'wrote {args.out}: {len(split["images"])} images, '
          f'{len(split["annotations"])} annotations')
    for cid, n in report['counts'].items():
        print(f'  {names[cid]} (id {cid}): {n}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
