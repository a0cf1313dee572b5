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

    # the whole protocol: k in {1, 3, 5, 10} x seeds {3, 30, 300}, written as
    # <stem>_<k>shot_seed<seed>.json (the names the benchmark configs read)
    # next to ANN_FILE (or in --out-dir), plus <stem>_few_shot_protocol.json
    python tools/make_few_shot.py ANN_FILE --protocol [--strict]
    # the same for each of the 13 ODinW13 training files under ODINW_ROOT
    python tools/make_few_shot.py ODINW_ROOT --odinw13 [--strict]
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
import tempfile
from collections import defaultdict

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _benchmarks():
    """projects/sdpt/benchmarks.py without importing the package (torch)."""
    import importlib.util
    path = osp.join(REPO_ROOT, 'projects', 'sdpt', 'benchmarks.py')
    spec = importlib.util.spec_from_file_location('_sdpt_benchmarks', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def _with_info(split, ann_file, shots, seed):
    info = dict(split.get('info') or {})
    info['few_shot'] = dict(source=osp.abspath(ann_file), shots=shots,
                            seed=seed, tool='tools/make_few_shot.py')
    split['info'] = info
    return split


def run_protocol(ann_file, shots_list, seeds, out_dir=None, strict=False,
                 title=None):
    """Write every k x seed split of ``ann_file``; return (status, manifest).

    Nothing is written when ``strict`` and a class is short of some k.
    """
    bench = _benchmarks()
    coco = load_coco(ann_file)
    out_dir = out_dir or osp.dirname(osp.abspath(ann_file))
    names = {c['id']: c['name'] for c in coco['categories']}
    stem = osp.basename(ann_file)
    splits, short = [], {}
    for shots in shots_list:
        for seed in seeds:
            split, report = make_few_shot(coco, shots, seed)
            out = osp.join(out_dir, bench.few_shot_name(stem, shots, seed))
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
        write_json_atomic(split, out)
        print(f'wrote {out}: {len(split["images"])} images, '
              f'{len(split["annotations"])} annotations')
    manifest_path = osp.join(
        out_dir, osp.splitext(stem)[0] + '_few_shot_protocol.json')
    with open(manifest_path, 'w', encoding='utf-8') as f:
        json.dump(manifest, f, indent=1)
    print(f'wrote {manifest_path}')
    return 0, manifest


def run_odinw13(root, shots_list, seeds, strict=False):
    """The protocol for each ODinW13 dataset's training file under root.

    With ``strict``, a dataset with short classes is skipped (nothing
    written for it) and the exit status is 1.
    """
    bench = _benchmarks()
    missing = [name for name, info in bench.ODINW13.items()
               if not osp.isfile(osp.join(root, info['root'],
                                          info['train_ann']))]
    if missing:
        raise SystemExit(
            f'ODinW13 training file(s) not found under {root}: '
            + '; '.join(osp.join(root, bench.ODINW13[n]['root'],
                                 bench.ODINW13[n]['train_ann'])
                        for n in missing))
    status = 0
    for name, info in bench.ODINW13.items():
        ann = osp.join(root, info['root'], info['train_ann'])
        status |= run_protocol(ann, shots_list, seeds, strict=strict,
                               title=name)[0]
    return status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='COCO-format annotation file (with '
                        '--odinw13: the ODinW root directory)')
    parser.add_argument('--shots', type=int, help='instances per class (k)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='output JSON path')
    parser.add_argument('--protocol', action='store_true',
                        help='write every --shots-list x --seeds split')
    parser.add_argument('--odinw13', action='store_true',
                        help='the protocol for each ODinW13 dataset under '
                        'the given root')
    parser.add_argument('--shots-list', type=int, nargs='+',
                        help='protocol k values (default 1 3 5 10)')
    parser.add_argument('--seeds', type=int, nargs='+',
                        help='protocol seeds (default 3 30 300)')
    parser.add_argument('--out-dir', help='protocol output directory '
                        '(default: next to the annotation file)')
    parser.add_argument('--strict', action='store_true',
                        help='fail if a class has fewer than --shots '
                        'instances instead of keeping what exists')
    args = parser.parse_args(argv)

    if args.protocol or args.odinw13:
        bench = _benchmarks()
        shots_list = args.shots_list or list(bench.PROTOCOL_SHOTS)
        seeds = args.seeds or list(bench.PROTOCOL_SEEDS)
        if min(shots_list) < 1:
            parser.error(f'--shots-list values must be >= 1, got '
                         f'{shots_list}')
        if args.odinw13:
            if args.out_dir:
                parser.error('--odinw13 writes next to each training file; '
                             'drop --out-dir')
            return run_odinw13(args.ann_file, shots_list, seeds, args.strict)
        return run_protocol(args.ann_file, shots_list, seeds, args.out_dir,
                            args.strict)[0]

    if args.shots is None or args.out is None:
        parser.error('--shots and --out are required (or use --protocol)')
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

    _with_info(split, args.ann_file, args.shots, args.seed)
    write_json_atomic(split, args.out)

    names = {c['id']: c['name'] for c in split['categories']}
    print(f'wrote {args.out}: {len(split["images"])} images, '
          f'{len(split["annotations"])} annotations')
    for cid, n in report['counts'].items():
        print(f'  {names[cid]} (id {cid}): {n}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
