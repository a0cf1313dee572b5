"""Tests for tools/make_few_shot.py on a small synthetic COCO dataset."""
import copy
import importlib.util
import json
import os.path as osp
import random
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SCRIPT = osp.join(ROOT, 'tools', 'make_few_shot.py')
_spec = importlib.util.spec_from_file_location('make_few_shot', SCRIPT)
mfs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mfs)

CAT, DOG, RARE = 1, 2, 3


def synthetic_coco():
    """20 images with 1-3 cats and 0-2 dogs each, one 'rare' instance, and
    a crowd 'rare' annotation that must never count."""
    rng = random.Random(0)
    images, anns = [], []

    def add(img_id, cat_id, crowd=0):
        anns.append(dict(id=len(anns) + 1, image_id=img_id,
                         category_id=cat_id, bbox=[1, 2, 10, 10], area=100,
                         iscrowd=crowd))

    for i in range(1, 21):
        images.append(dict(id=i, file_name=f'{i:03d}.jpg', width=64,
                           height=64))
        for _ in range(rng.randint(1, 3)):
            add(i, CAT)
        for _ in range(rng.randint(0, 2)):
            add(i, DOG)
    add(5, RARE)
    add(7, RARE, crowd=1)
    return dict(
        info=dict(description='synthetic'), licenses=[],
        images=images, annotations=anns,
        categories=[dict(id=CAT, name='cat'), dict(id=DOG, name='dog'),
                    dict(id=RARE, name='rare')])


def per_class(split):
    counts = {}
    for a in split['annotations']:
        counts[a['category_id']] = counts.get(a['category_id'], 0) + 1
    return counts


@pytest.mark.parametrize('shots', [1, 3])
def test_exact_shots_and_consistency(shots):
    coco = synthetic_coco()
    src = copy.deepcopy(coco)
    split, report = mfs.make_few_shot(coco, shots, seed=3)
    assert coco == src  # input untouched

    counts = per_class(split)
    assert counts[CAT] == shots and counts[DOG] == shots
    assert counts[RARE] == 1
    assert report['counts'] == {CAT: shots, DOG: shots, RARE: 1}
    if shots == 1:
        assert report['short'] == {}
    else:
        assert report['short'] == {RARE: 1}
        assert any('rare' in line for line in report['lines'])

    img_ids = [im['id'] for im in split['images']]
    assert len(img_ids) == len(set(img_ids))
    assert set(img_ids) == {a['image_id'] for a in split['annotations']}
    assert not any(a.get('iscrowd') for a in split['annotations'])
    assert split['categories'] == coco['categories']
    assert split['info']['description'] == 'synthetic'


def test_deterministic_per_seed():
    def pick(seed):
        split, _ = mfs.make_few_shot(synthetic_coco(), 3, seed)
        return split

    assert pick(3) == pick(3)
    selections = {tuple(a['id'] for a in pick(s)['annotations'])
                  for s in range(4)}
    assert len(selections) > 1


def test_shots_below_one():
    with pytest.raises(ValueError):
        mfs.make_few_shot(synthetic_coco(), 0, 0)


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(synthetic_coco()))
    return path


def test_cli_writes_loadable_file(ann_file, tmp_path):
    from pycocotools.coco import COCO
    out = tmp_path / 'sub' / 'few.json'
    res = run(ann_file, '--shots', 3, '--seed', 3, '--out', out)
    assert res.returncode == 0, res.stderr
    assert 'short: class "rare"' in res.stdout and str(out) in res.stdout
    coco = COCO(str(out))
    assert len(coco.getAnnIds(catIds=[CAT])) == 3
    info = json.loads(out.read_text())['info']['few_shot']
    assert info['shots'] == 3 and info['seed'] == 3
    assert [p.name for p in out.parent.iterdir()] == ['few.json']

    # same seed through the CLI -> byte-identical file
    out2 = tmp_path / 'few2.json'
    assert run(ann_file, '--shots', 3, '--seed', 3,
               '--out', out2).returncode == 0
    assert out2.read_bytes() == out.read_bytes()


def test_cli_strict_fails_on_short_class(ann_file, tmp_path):
    out = tmp_path / 'few.json'
    res = run(ann_file, '--shots', 3, '--out', out, '--strict')
    assert res.returncode != 0
    assert 'rare' in res.stdout + res.stderr
    assert not out.exists()
    assert run(ann_file, '--shots', 1, '--out', out,
               '--strict').returncode == 0


@pytest.mark.parametrize('content,expect', [
    ('{not json', 'not valid JSON'),
    ('{"images": [], "categories": []}', 'annotations'),
    (None, 'not found'),
])
def test_cli_bad_input(tmp_path, content, expect):
    bad = tmp_path / 'bad.json'
    if content is not None:
        bad.write_text(content)
    res = run(bad, '--shots', 1, '--out', tmp_path / 'o.json')
    assert res.returncode != 0
    assert str(bad) in res.stderr and expect in res.stderr
    assert not (tmp_path / 'o.json').exists()


def test_cli_rejects_zero_shots(ann_file, tmp_path):
    res = run(ann_file, '--shots', 0, '--out', tmp_path / 'o.json')
    assert res.returncode != 0 and '--shots' in res.stderr
