"""k-shot splits (projects/sdpt/datasets/few_shot.py) and their command
line, tools/make_few_shot.py, on a small synthetic COCO dataset."""
import copy
import json
import random
from functools import partial

import pytest
from helpers import run
from pycocotools.coco import COCO

from projects.sdpt.datasets import benchmark_settings as bench
from projects.sdpt.datasets.few_shot import (
    AnnotationFileError,
    load_coco,
    make_few_shot,
    run_odinw13,
    run_protocol,
    write_split,
)

# The command line, in a child process (exit status, stdout and stderr as a
# user sees them); each test checks the exit status.
cli = partial(run, 'make_few_shot.py', ok=False, timeout=120)

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
    split, report = make_few_shot(coco, shots, seed=3)
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
        split, _ = make_few_shot(synthetic_coco(), 3, seed)
        return split

    assert pick(3) == pick(3)
    selections = {tuple(a['id'] for a in pick(s)['annotations'])
                  for s in range(4)}
    assert len(selections) > 1


def test_shots_below_one():
    with pytest.raises(ValueError):
        make_few_shot(synthetic_coco(), 0, 0)


@pytest.fixture
def ann_file(tmp_path):
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps(synthetic_coco()))
    return path


@pytest.mark.slow
def test_cli_writes_loadable_file(ann_file, tmp_path):
    out = tmp_path / 'sub' / 'few.json'
    res = cli(ann_file, '--shots', 3, '--seed', 3, '--out', out)
    assert res.code == 0, res.stderr
    assert 'short: class "rare"' in res.stdout and str(out) in res.stdout
    coco = COCO(str(out))
    assert len(coco.getAnnIds(catIds=[CAT])) == 3
    info = json.loads(out.read_text())['info']['few_shot']
    assert info['shots'] == 3 and info['seed'] == 3
    assert [p.name for p in out.parent.iterdir()] == ['few.json']

    # same seed again -> byte-identical file
    out2 = tmp_path / 'few2.json'
    assert write_split(str(ann_file), 3, 3, str(out2)) == 0
    assert out2.read_bytes() == out.read_bytes()


def test_strict_fails_on_short_class(ann_file, tmp_path, capsys):
    out = tmp_path / 'few.json'
    assert write_split(str(ann_file), 3, 0, str(out), strict=True) == 1
    captured = capsys.readouterr()
    assert 'rare' in captured.out + captured.err
    assert '--strict' in captured.err
    assert not out.exists()
    assert write_split(str(ann_file), 1, 0, str(out), strict=True) == 0


@pytest.mark.parametrize('content,expect', [
    ('{not json', 'not valid JSON'),
    ('{"images": [], "categories": []}', 'annotations'),
    (None, 'not found'),
])
def test_bad_input(tmp_path, content, expect):
    bad = tmp_path / 'bad.json'
    if content is not None:
        bad.write_text(content)
    with pytest.raises(AnnotationFileError) as err:
        load_coco(str(bad))
    assert str(bad) in str(err.value) and expect in str(err.value)
    with pytest.raises(AnnotationFileError):
        write_split(str(bad), 1, 0, str(tmp_path / 'o.json'))
    assert not (tmp_path / 'o.json').exists()


@pytest.mark.slow
def test_cli_bad_input_is_one_message(tmp_path):
    bad = tmp_path / 'bad.json'
    res = cli(bad, '--shots', 1, '--out', tmp_path / 'o.json')
    assert res.code != 0
    assert str(bad) in res.stderr and 'not found' in res.stderr
    assert 'Traceback' not in res.stderr
    assert not (tmp_path / 'o.json').exists()


@pytest.mark.slow
def test_cli_rejects_zero_shots(ann_file, tmp_path):
    res = cli(ann_file, '--shots', 0, '--out', tmp_path / 'o.json')
    assert res.code != 0 and '--shots' in res.stderr


# ---- the protocol: k in {1, 3, 5, 10} x seeds {3, 30, 300} in one go ----

def test_protocol_writes_every_split_with_config_names(ann_file, tmp_path,
                                                       capsys):
    out_dir = tmp_path / 'splits'
    status, manifest = run_protocol(str(ann_file), bench.PROTOCOL_SHOTS,
                                    bench.PROTOCOL_SEEDS, str(out_dir))
    assert status == 0
    stdout = capsys.readouterr().out
    names = sorted(p.name for p in out_dir.iterdir())
    expect = sorted(f'ann_{k}shot_seed{s}.json' for k in (1, 3, 5, 10)
                    for s in (3, 30, 300)) + ['ann_few_shot_protocol.json']
    assert names == expect
    # the short class is reported for every k above what it has
    for k in (3, 5, 10):
        assert f'short: k={k}: 1 class(es)' in stdout
        assert '"rare" (1)' in stdout
    assert 'short: k=1:' not in stdout
    cats = {a['category_id'] for a in synthetic_coco()['annotations']}
    for k in (1, 3, 5, 10):
        for s in (3, 30, 300):
            split = json.loads((out_dir / f'ann_{k}shot_seed{s}.json')
                               .read_text())
            counts = per_class(split)
            assert counts == {CAT: k, DOG: k, RARE: 1}, (k, s)
            assert set(counts) == cats
            assert split['info']['few_shot'] == dict(
                source=str(ann_file), shots=k, seed=s,
                tool='tools/make_few_shot.py')
    written = json.loads((out_dir / 'ann_few_shot_protocol.json')
                         .read_text())
    assert written == manifest
    assert manifest['short'] == {'3': {'rare': 1}, '5': {'rare': 1},
                                 '10': {'rare': 1}}
    assert len(manifest['splits']) == 12
    # seeds give different splits; the protocol file equals a single run
    picks = {(out_dir / f'ann_3shot_seed{s}.json').read_text()
             for s in (3, 30, 300)}
    assert len(picks) == 3
    single = tmp_path / 'single.json'
    assert write_split(str(ann_file), 5, 30, str(single)) == 0
    assert single.read_bytes() == (out_dir / 'ann_5shot_seed30.json'
                                   ).read_bytes()


def test_protocol_deterministic_and_default_location(ann_file, tmp_path):
    assert run_protocol(str(ann_file), [1, 3], [3, 30])[0] == 0
    first = {p.name: p.read_bytes() for p in tmp_path.glob('ann_*shot_seed*')}
    assert len(first) == 4
    assert run_protocol(str(ann_file), [1, 3], [3, 30])[0] == 0
    assert {p.name: p.read_bytes()
            for p in tmp_path.glob('ann_*shot_seed*')} == first


def test_protocol_strict_writes_nothing(ann_file, tmp_path, capsys):
    out_dir = tmp_path / 'splits'
    status, _ = run_protocol(str(ann_file), bench.PROTOCOL_SHOTS,
                             bench.PROTOCOL_SEEDS, str(out_dir), strict=True)
    assert status == 1
    captured = capsys.readouterr()
    assert '"rare" (1)' in captured.out and '--strict' in captured.err
    assert not out_dir.exists() or not any(out_dir.iterdir())
    assert run_protocol(str(ann_file), [1], bench.PROTOCOL_SEEDS,
                        str(out_dir), strict=True)[0] == 0


@pytest.mark.slow
def test_cli_protocol_exit_status(ann_file, tmp_path):
    out_dir = tmp_path / 'splits'
    res = cli(ann_file, '--protocol', '--strict', '--shots-list', 1, 3,
              '--seeds', 3, '--out-dir', out_dir)
    assert res.code == 1
    assert '"rare" (1)' in res.stdout and '--strict' in res.stderr
    assert not out_dir.exists() or not any(out_dir.iterdir())


def _odinw_root(tmp_path, skip=()):
    """Each ODinW13 training file (as benchmark_settings.ODINW13 lays them
    out), with that dataset's classes and two instances of each."""
    root = tmp_path / 'odinw'
    for name, info in bench.ODINW13.items():
        if name in skip:
            continue
        cats = [dict(id=i + 1, name=c) for i, c in enumerate(info['classes'])]
        images = [dict(id=i, file_name=f'{i}.jpg', width=64, height=64)
                  for i in (1, 2)]
        anns = [dict(id=len(cats) * (i - 1) + c['id'], image_id=i,
                     category_id=c['id'], bbox=[0, 0, 8, 8], area=64,
                     iscrowd=0) for i in (1, 2) for c in cats]
        path = root / info['root'] / info['train_ann']
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(images=images, annotations=anns,
                                        categories=cats)))
    return root


def test_odinw13_protocol(tmp_path, capsys):
    root = _odinw_root(tmp_path)
    assert run_odinw13(str(root), [1, 3], [3, 30]) == 0
    stdout = capsys.readouterr().out
    for name, info in bench.ODINW13.items():
        assert f'== {name}:' in stdout
        for k in (1, 3):
            for s in (3, 30):
                path = (root / info['root'] /
                        bench.few_shot_name(info['train_ann'], k, s))
                split = json.loads(path.read_text())
                assert set(per_class(split).values()) == {min(k, 2)}
    # every class has 2 instances: k=3 is short everywhere, and reported
    assert stdout.count('short: k=3') == 13
    assert run_odinw13(str(root), [3], [3], strict=True) == 1


def test_odinw13_protocol_missing_dataset(tmp_path):
    root = _odinw_root(tmp_path, skip=('pistols', ))
    with pytest.raises(AnnotationFileError) as err:
        run_odinw13(str(root), [1], [3])
    assert 'train_annotations_without_background.json' in str(err.value)
    assert not list(root.rglob('*shot_seed*'))
