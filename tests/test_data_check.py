"""The annotation checker (projects/sdpt/datasets/data_check.py) and its
command line, tools/check_annotations.py: every kind of bad data is reported
with its file, field and fix; what mmdet's loader really does with
grayscale, RGBA and EXIF-rotated images; a seeded fuzz test."""
import copy
import json
import os
import os.path as osp
import random
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import run, write_coco
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import CocoDataset
from mmdet.models.detectors.glip import GLIP, create_positive_map
from mmdet.utils import register_all_modules
from PIL import Image, ImageOps
from transformers import AutoTokenizer

from projects.sdpt.datasets.data_check import (
    DataCheckError,
    check_coco_annotations,
    coco_sources,
)

CLASSES = ['circle', 'square', 'triangle']


def _image(path, size=(32, 24), mode='RGB', exif_orientation=None):
    h, w = size[1], size[0]
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:, :w // 2] = (255, 0, 0)  # left half red: shows a rotation
    img = Image.fromarray(pixels)
    if mode != 'RGB':
        img = img.convert(mode)
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(path, exif=exif, quality=95)
    else:
        img.save(path)


def make_set(root, n=3):
    """A valid COCO set of n 32x24 images with one box each."""
    img_dir = root / 'img'
    img_dir.mkdir(parents=True, exist_ok=True)
    data = dict(images=[], annotations=[], categories=[
        dict(id=i + 1, name=n_) for i, n_ in enumerate(CLASSES)])
    for i in range(1, n + 1):
        _image(img_dir / f'{i}.png')
        data['images'].append(
            dict(id=i, file_name=f'{i}.png', width=32, height=24))
        data['annotations'].append(
            dict(id=i, image_id=i, category_id=(i - 1) % 3 + 1,
                 bbox=[2, 3, 10, 8], area=80.0, iscrowd=0))
    return data, img_dir


def write(root, data, name='ann.json'):
    path = root / name
    path.write_text(json.dumps(data))
    return str(path)


def check(tmp_path, data, img_dir, **kw):
    return check_coco_annotations(write(tmp_path, data), str(img_dir), **kw)


def issues(report, kind, errors=True):
    return [i for i in (report.errors if errors else report.warnings)
            if i.kind == kind]


def test_valid_set_and_demo_set_have_no_issues(tmp_path, demo_root):
    data, img_dir = make_set(tmp_path)
    report = check(tmp_path, data, img_dir, classes=CLASSES)
    assert report.ok and not report.warnings, report.format()
    shapes = demo_root / 'data' / 'demo' / 'shapes'
    for split in ('train', 'val'):
        report = check_coco_annotations(
            str(shapes / 'annotations' / f'instances_{split}.json'),
            str(shapes / split), classes=CLASSES, tokenizer_max_tokens=256,
            tokenizer=str(demo_root / 'data' / 'demo' / 'bert'))
        assert report.ok and not report.warnings, report.format()


def test_annotation_file_that_is_not_json(tmp_path):
    path = tmp_path / 'ann.json'
    path.write_text('{"images": [{"id": 1, "file_name": "a.png",')
    report = check_coco_annotations(str(path))
    [err] = report.errors
    assert err.kind == 'not-json' and err.file == str(path)
    assert 'line 1 column' in err.where and 'json.tool' in err.fix
    with pytest.raises(DataCheckError, match='not valid JSON|Not valid JSON'):
        report.raise_if_errors()
    path.write_text('[1, 2]')
    assert check_coco_annotations(str(path)).kinds() == ['not-coco']


def test_unreadable_and_truncated_images_are_errors_naming_the_file(
        tmp_path):
    data, img_dir = make_set(tmp_path)
    (img_dir / '1.png').write_bytes(b'this is not an image')
    full = (img_dir / '2.png').read_bytes()
    (img_dir / '2.png').write_bytes(full[:len(full) // 2])
    report = check(tmp_path, data, img_dir)
    bad = issues(report, 'unreadable-image')
    assert sorted(osp.basename(i.file) for i in bad) == ['1.png', '2.png']
    assert all('images[' in i.where and 'complete copy' in i.fix
               for i in bad)
    # a header-only check still sees a file that is no image at all
    fast = check(tmp_path, data, img_dir, decode_images=False)
    assert '1.png' in [osp.basename(i.file)
                       for i in issues(fast, 'unreadable-image')]


def test_image_listed_but_missing(tmp_path):
    data, img_dir = make_set(tmp_path)
    (img_dir / '3.png').unlink()
    report = check(tmp_path, data, img_dir)
    [err] = report.errors
    assert err.kind == 'missing-image' and err.file.endswith('3.png')
    assert '(id=3)' in err.where and 'remove its entry' in err.fix


def _load_like_mmdet(path):
    return LoadImageFromFile()(dict(img_path=str(path)))['img']


def test_grayscale_and_rgba_images_warn_and_load_as_three_channels(
        tmp_path):
    data, img_dir = make_set(tmp_path)
    _image(img_dir / '1.png', mode='L')
    _image(img_dir / '2.png', mode='RGBA')
    report = check(tmp_path, data, img_dir)
    assert report.ok, report.format()
    assert [osp.basename(i.file)
            for i in issues(report, 'grayscale-image', False)] == ['1.png']
    assert [osp.basename(i.file)
            for i in issues(report, 'alpha-image', False)] == ['2.png']
    # what mmdet's LoadImageFromFile (color_type='color') makes of them
    gray, rgba = (_load_like_mmdet(img_dir / f) for f in ('1.png', '2.png'))
    assert gray.shape == rgba.shape == (24, 32, 3)
    assert (gray[..., 0] == gray[..., 1]).all()
    assert tuple(rgba[0, 0]) == (0, 0, 255)  # red in BGR, alpha dropped


def test_exif_rotated_image_is_loaded_rotated_and_checked_against_sizes(
        tmp_path):
    data, img_dir = make_set(tmp_path)
    # stored 32x24, orientation 6: displayed (and loaded) 24 wide, 32 high
    _image(img_dir / '1.jpg', exif_orientation=6)
    data['images'][0].update(file_name='1.jpg', width=24, height=32)
    loaded = _load_like_mmdet(img_dir / '1.jpg')
    assert loaded.shape == (32, 24, 3)  # mmcv applies the EXIF rotation
    with Image.open(img_dir / '1.jpg') as im:
        shown = np.asarray(ImageOps.exif_transpose(im))
    assert np.abs(loaded[..., ::-1].astype(int) - shown).max() <= 2
    assert (loaded[0, :, 2] > 200).all() and (loaded[-1, :, 2] < 50).all()
    report = check(tmp_path, data, img_dir)
    assert report.ok and issues(report, 'exif-rotated', False)
    # sizes of the stored pixels: boxes were drawn on the unrotated image
    data['images'][0].update(width=32, height=24)
    [err] = check(tmp_path, data, img_dir).errors
    assert err.kind == 'exif-rotated' and err.file.endswith('1.jpg')
    assert 'exif_transpose' in err.fix


@pytest.mark.parametrize('bbox,kind,is_error', [
    ([2, 3, 0, 8], 'degenerate-box', False),
    ([2, 3, 10, 0.5], 'degenerate-box', False),
    ([12, 3, -10, 8], 'bad-box', True),
    ([40, 30, 5, 5], 'box-outside-image', True),
    ([-5, 3, 10, 8], 'box-outside-image', False),
    ([2, 3, 10], 'bad-box', True),
    ([2, 3, 'a', 8], 'bad-box', True),
])
def test_boxes_of_zero_or_negative_size_or_outside_the_image(
        tmp_path, bbox, kind, is_error):
    data, img_dir = make_set(tmp_path)
    data['annotations'][1]['bbox'] = bbox
    report = check(tmp_path, data, img_dir)
    [issue] = issues(report, kind, is_error)
    assert '(id=2).bbox' in issue.where and issue.fix
    assert report.ok is not is_error


def test_category_id_not_in_categories(tmp_path):
    data, img_dir = make_set(tmp_path)
    data['annotations'][0]['category_id'] = 9
    [err] = check(tmp_path, data, img_dir).errors
    assert err.kind == 'unknown-category' and '9' in err.problem
    assert 'annotations[0] (id=1).category_id' == err.where


def test_image_with_no_annotations_warns_and_none_at_all_is_an_error(
        tmp_path):
    data, img_dir = make_set(tmp_path)
    del data['annotations'][2]
    report = check(tmp_path, data, img_dir)
    assert report.ok
    [warn] = issues(report, 'no-annotations', False)
    assert '3.png' in warn.where and 'filter_empty_gt' in warn.problem
    data['annotations'] = []
    assert 'no-annotations' in check(tmp_path, data, img_dir).kinds()


def test_config_classes_missing_or_in_another_order(tmp_path):
    data, img_dir = make_set(tmp_path)
    report = check(tmp_path, data, img_dir, classes=['circle', 'hexagon'])
    assert report.kinds() == ['class-not-in-categories']
    report = check(tmp_path, data, img_dir,
                   classes=['square', 'circle', 'triangle'])
    [err] = report.errors
    assert err.kind == 'class-order'
    assert "('circle', 'square', 'triangle')" in err.fix


def _mmdet_positive_rows(tokenizer, names):
    """Which classes mmdet's GLIP gives text tokens (its own code)."""
    glip = SimpleNamespace(_special_tokens='. ',
                           language_model=SimpleNamespace(
                               tokenizer=tokenizer))
    glip.to_plain_text_prompts = lambda c: GLIP.to_plain_text_prompts(
        glip, c)
    tokenized, _, positive, _ = GLIP.get_tokens_and_prompts(
        glip, list(names), True)
    return create_positive_map(tokenized, positive).sum(1) > 0


def test_class_names_with_punctuation_and_non_ascii(tmp_path, demo_root):
    bert = str(demo_root / 'data' / 'demo' / 'bert')
    tokenizer = AutoTokenizer.from_pretrained(bert)
    names = ['circle', "o'clock-tower", 'café', 'st. bernard', '北',
             '\u200b', '(empty)']
    data, img_dir = make_set(tmp_path)
    data['categories'] = [dict(id=i + 1, name=n) for i, n in
                          enumerate(names)]
    report = check(tmp_path, data, img_dir, tokenizer=tokenizer)
    found = {i.where: i for i in report.errors + report.warnings}
    # punctuation and accents are read fine; '.' splits Grounding DINO phrases
    assert "class \"o'clock-tower\"" not in found
    assert "class 'café'" not in found
    assert 'phrases' in found["class 'st. bernard'"].problem
    assert found["class '北'"] in report.warnings  # read as [UNK]
    assert found["class '\\u200b'"] in report.errors  # no token at all
    assert 'empty' in found["class '(empty)'"].problem
    # the checker's verdict is mmdet's: no positive text token for the
    # classes it calls errors, tokens for the others
    rows = _mmdet_positive_rows(tokenizer, names)
    assert rows.tolist() == [True, True, True, True, True, False, False]
    # without a tokenizer, non-ASCII names get a warning to check them
    report = check(tmp_path, data, img_dir)
    assert "class 'café'" in {i.where for i in report.warnings}


def test_class_list_longer_than_the_text_encoder_token_limit(
        tmp_path, demo_root):
    data, img_dir = make_set(tmp_path)
    names = CLASSES + [f'thing{i}' for i in range(150)]
    data['categories'] = [dict(id=i + 1, name=n) for i, n in
                          enumerate(names)]
    bert = str(demo_root / 'data' / 'demo' / 'bert')
    report = check(tmp_path, data, img_dir, tokenizer_max_tokens=256,
                   tokenizer=bert)
    [err] = issues(report, 'too-many-tokens')
    assert 'the text encoder reads 256' in err.problem
    assert 'language_model.max_tokens' in err.fix
    # without a tokenizer: a lower bound, still over the limit
    assert 'too-many-tokens' in check(tmp_path, data, img_dir,
                                      tokenizer_max_tokens=256).kinds()
    assert 'too-many-tokens' not in check(
        tmp_path, data, img_dir, tokenizer_max_tokens=2000).kinds()


@pytest.mark.slow
def test_cli_prints_the_report_and_exits_nonzero_on_errors(tmp_path):
    data, img_dir = make_set(tmp_path)
    data['annotations'][0]['bbox'] = [1, 1, -3, 2]
    ann = write(tmp_path, data)
    proc = run('check_annotations.py', ann, '--img-dir', img_dir,
               '--classes', *CLASSES, '--json', ok=False, timeout=300)
    assert proc.code == 1, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report['errors'][0]['kind'] == 'bad-box'
    assert report['errors'][0]['where'] == 'annotations[0] (id=1).bbox'
    data['annotations'][0]['bbox'] = [1, 1, 3, 2]
    run('check_annotations.py', write(tmp_path, data), '--img-dir', img_dir,
        timeout=300)  # exits 0


def test_custom_annotations_pass_the_checker(tmp_path):
    """A COCO file laid out as the custom configs read it
    (configs/custom/, test_benchmark_settings.py) passes the checker."""
    write_coco(tmp_path / 'train.json', tmp_path / 'imgs', ('a', 'b'))
    report = check_coco_annotations(
        str(tmp_path / 'train.json'), img_dir=str(tmp_path / 'imgs'),
        classes=('a', 'b'))
    assert not report.errors, report


def test_coco_sources_follow_dataset_wrappers():
    cfg = dict(type='RepeatDataset', times=2, dataset=dict(
        type='ConcatDataset', datasets=[
            dict(type='CocoDataset', data_root='d/', ann_file='a.json',
                 data_prefix=dict(img='img/'),
                 metainfo=dict(classes=['x'])),
            dict(type='ODVGDataset', data_root='d/', ann_file='b.jsonl')]))
    assert coco_sources(cfg) == [
        dict(ann_file='d/a.json', img_dir='d/img/', classes=('x', ))]


# ------------------------------------------------------------------ fuzz
#: Files the fuzz test writes, from seed 0 (SDPT_FUZZ_SEED=n: others); a
#: number of files, not a time, so that every machine checks the same files.
FUZZ_CASES = 300


def _mutations(rng, data):
    """One random corruption of a valid COCO dict (or of its text)."""
    junk = [None, -1, 0, 1.5, float('nan'), 'x', [], {}, [1, 2], True, 10**9,
            2, '1', -0.0]
    data = copy.deepcopy(data)
    kind = rng.randrange(6)
    if kind == 0:  # a field replaced by junk (annotations most often)
        section = rng.choice(['images', 'annotations', 'annotations',
                              'categories'])
        item = rng.choice(data[section])
        item[rng.choice(list(item))] = rng.choice(junk)
    elif kind == 1:  # a field deleted
        section = rng.choice(['images', 'annotations', 'categories'])
        item = rng.choice(data[section])
        del item[rng.choice(list(item))]
    elif kind == 2:  # a box coordinate
        ann = rng.choice(data['annotations'])
        ann['bbox'][rng.randrange(4)] = rng.choice(
            [-50, -1, 0, 0.3, 31, 60, 1e6, float('inf')])
    elif kind == 3:  # a whole section replaced
        data[rng.choice(['images', 'annotations', 'categories'])] = \
            rng.choice(junk)
    elif kind == 4:  # duplicated entries
        section = rng.choice(['images', 'annotations', 'categories'])
        data[section].append(copy.deepcopy(rng.choice(data[section])))
    else:  # the text cut short
        text = json.dumps(data)
        return text[:rng.randrange(len(text))]
    return json.dumps(data)


@pytest.mark.slow
def test_fuzz_checker_never_crashes_and_clean_files_load_in_mmdet(
        tmp_path):
    """Malformed COCO files: the checker returns a report (never raises),
    and whatever it passes without errors mmdet's CocoDataset loads and
    iterates without an exception. FUZZ_CASES files, drawn from
    SDPT_FUZZ_SEED (0 unless set)."""
    register_all_modules()
    data, img_dir = make_set(tmp_path)
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs')]
    rng = random.Random(int(os.environ.get('SDPT_FUZZ_SEED', 0)))
    cases = passed = 0
    while cases < FUZZ_CASES:
        text = _mutations(rng, data)
        path = tmp_path / f'fuzz_{cases}.json'
        path.write_text(text)
        report = check_coco_annotations(str(path), str(img_dir),
                                        classes=CLASSES)
        cases += 1
        if report.errors:
            assert all(i.file and i.fix for i in report.errors)
            continue
        passed += 1
        try:
            dataset = CocoDataset(
                ann_file=str(path), data_prefix=dict(img=str(img_dir) + '/'),
                metainfo=dict(classes=tuple(CLASSES)), pipeline=pipeline,
                filter_cfg=dict(filter_empty_gt=True))
            for i in range(len(dataset)):
                dataset[i]
        except Exception:
            print(text, report.format())
            raise
    print(f"fuzz: {cases} files, {passed} passed the check and loaded")
    assert cases >= 50 and 0 < passed < cases, (cases, passed)
