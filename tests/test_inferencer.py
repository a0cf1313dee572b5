"""The inferencer (projects/sdpt/inference/inferencer.py) and its command
line, tools/infer.py, on a folder of images with a prompt checkpoint of the
tiny Grounding DINO: drawn images, JSON and COCO results, bad inputs skipped
with the reason, images read as the training loader reads them, the
base-fingerprint refusal and a prompt bank."""
import json
import os
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from helpers import (
    DEMO_CONFIGS,
    build_model,
    run,
    save_base_weights,
    save_prompt_checkpoint,
)
from PIL import Image

from projects.sdpt.checkpoint.prompt_checkpoint import BaseWeightsMismatch
from projects.sdpt.inference import NoClassNamesError, PromptInferencer

CLASSES = ['circle', 'square', 'triangle']


@pytest.fixture(scope='module')
def files(demo_root, tmp_path_factory):
    """Base weights, two prompt checkpoints (their own classes) and a
    folder of good and bad images."""
    root = tmp_path_factory.mktemp('infer')
    model, _ = build_model('gdino', demo_root)  # the demo config's prompt
    base = save_base_weights(model, root / 'base.pth')
    other = save_base_weights(model, root / 'other_base.pth',
                              shift={'text_feat_map.bias': 0.01})
    prompts = {}
    for seed, classes in enumerate((CLASSES, ['triangle', 'round circle',
                                              'big square'])):
        torch.manual_seed(seed)
        with torch.no_grad():
            for param in model.prompt_tuning.parameters():
                param.uniform_(-1, 1)
        prompts[seed] = root / f'prompt_{seed}.pth'
        save_prompt_checkpoint(model, prompts[seed], iter=39,
                               classes=classes, load_from=base,
                               base_weights=base)

    images = root / 'images'
    images.mkdir()
    val = demo_root / 'data' / 'demo' / 'shapes' / 'val'
    shape = Image.open(val / 'val_0001.png').convert('RGB')
    shape.save(images / 'good.png')
    shape.convert('L').save(images / 'gray.jpg')
    rgba = shape.convert('RGBA')
    rgba.putalpha(128)
    rgba.save(images / 'alpha.png')
    # 128 x 64 stored, EXIF orientation 6 (rotate 90): read as 64 x 128
    wide = shape.resize((128, 64))
    exif = Image.Exif()
    exif[0x0112] = 6
    wide.save(images / 'rotated.jpg', exif=exif)
    shape.save(root / 'full.jpg')
    full = (root / 'full.jpg').read_bytes()
    # cut short: the loader decodes none of it, or all but the end
    (images / 'truncated.jpg').write_bytes(full[:len(full) // 2])
    (images / 'cut_end.jpg').write_bytes(full[:-100])
    (images / 'text.jpg').write_text('not an image')
    (root / 'notes.txt').write_text('hello')
    sub = root / 'more'
    sub.mkdir()
    shape.save(sub / 'good.png')  # same name as images/good.png
    return SimpleNamespace(root=root, base=base, other=other,
                           prompts=prompts, images=images, sub=sub,
                           bert=str(demo_root / 'data' / 'demo' / 'bert'))


def _options(files):
    return {'model.detector.language_model.name': files.bert}


@pytest.mark.slow
def test_api_on_a_folder_writes_drawings_json_and_coco(files, tmp_path):
    infer = PromptInferencer.from_files(
        DEMO_CONFIGS['gdino'], base_weights=files.base,
        prompt=str(files.prompts[0]), cfg_options=_options(files))
    assert infer.classes == CLASSES  # from the prompt card
    out = tmp_path / 'out'
    summary = infer([str(files.images), str(files.root / 'notes.txt'),
                     str(files.root / 'missing.jpg'),
                     str(files.root / 'nothing' / '*.png'),
                     str(files.sub)],
                    out_dir=str(out), batch_size=2, score_thr=0.0,
                    coco=True, show_progress=False)
    skipped = {osp.basename(s.path): s.reason for s in summary.skipped}
    assert set(skipped) == {'notes.txt', 'missing.jpg', '*.png',
                            'truncated.jpg', 'cut_end.jpg', 'text.jpg'}
    assert skipped['missing.jpg'] == 'no such file'
    assert 'not an image' in skipped['notes.txt']
    assert 'not an image' in skipped['text.jpg']
    assert skipped['truncated.jpg'].startswith('truncated or corrupt')
    assert skipped['cut_end.jpg'].startswith('truncated or corrupt')
    assert skipped['*.png'] == 'pattern matches no file'
    good = ['alpha', 'good', 'gray', 'rotated', 'good_2']
    assert sorted(os.listdir(out / 'preds')) == sorted(
        f'{n}.json' for n in good)
    assert sorted(os.listdir(out / 'vis')) == sorted(
        f'{n}.jpg' for n in good)
    records = {n: json.loads((out / 'preds' / f'{n}.json').read_text())
               for n in good}
    # read as the training loader reads them: 3 channels, EXIF applied
    assert (records['rotated']['width'], records['rotated']['height']) == \
        (64, 128)
    assert (records['gray']['width'], records['gray']['height']) == (128, 128)
    assert records['good_2']['image'] == str(files.sub / 'good.png')
    for record in records.values():
        assert record['classes'] == CLASSES and record['detections']
        for det in record['detections']:
            assert det['class_name'] == CLASSES[det['label']]
            x1, y1, x2, y2 = det['bbox']
            assert 0 <= x1 <= x2 <= record['width'] + 1e-3
    # the same image gives the same detections wherever it is (up to the
    # batch's padding: its batch mates differ)
    for a, b in zip(records['good']['detections'],
                    records['good_2']['detections'], strict=True):
        assert a['label'] == b['label']
        assert a['score'] == pytest.approx(b['score'], abs=1e-3)
        assert a['bbox'] == pytest.approx(b['bbox'], abs=0.1)
    drawn = Image.open(out / 'vis' / 'rotated.jpg')
    assert drawn.size == (64, 128)
    coco = json.loads((out / 'results.bbox.json').read_text())
    meta = json.loads((out / 'results.images.json').read_text())
    assert len(coco) == summary.detections == sum(
        len(r['detections']) for r in records.values())
    assert [c['name'] for c in meta['categories']] == CLASSES
    assert {c['category_id'] for c in coco} <= {1, 2, 3}
    assert len(meta['images']) == 5
    written = json.loads((out / 'summary.json').read_text())
    assert written['processed'] == 5 and len(written['skipped']) == 6


def test_texts_override_and_empty_class_list(files, tmp_path):
    infer = PromptInferencer.from_files(
        DEMO_CONFIGS['gdino'], base_weights=files.base,
        prompt=str(files.prompts[0]), texts='square . circle . ring .',
        cfg_options=_options(files))
    assert infer.classes == ['square', 'circle', 'ring']
    summary = infer([str(files.images / 'good.png')], score_thr=0.0,
                    show_progress=False)
    names = {d['class_name'] for d in summary.predictions[0]['detections']}
    assert names <= {'square', 'circle', 'ring'} and names
    with pytest.raises(NoClassNamesError, match='Empty class list'):
        PromptInferencer.from_files(
            DEMO_CONFIGS['gdino'], base_weights=files.base,
            prompt=str(files.prompts[0]), texts=[' ', '.'],
            cfg_options=_options(files))


def test_prompts_on_other_base_weights_are_refused(files):
    with pytest.raises(BaseWeightsMismatch, match='other_base.pth'):
        PromptInferencer.from_files(
            DEMO_CONFIGS['gdino'], base_weights=files.other,
            prompt=str(files.prompts[0]), cfg_options=_options(files))
    PromptInferencer.from_files(
        DEMO_CONFIGS['gdino'], base_weights=files.other,
        prompt=str(files.prompts[0]), cfg_options=_options(files),
        allow_base_mismatch=True)


@pytest.mark.slow
def test_tool_with_a_prompt_bank_and_exit_status(files, tmp_path):
    out = tmp_path / 'bank'
    res = run(
        'infer.py', DEMO_CONFIGS['gdino'],
        f'shapes={files.images / "good.png"}',
        f'other={files.sub}', f'other={files.root / "missing.png"}',
        '--task', f'shapes={files.prompts[0]}',
        '--task', f'other={files.prompts[1]}',
        '--base-weights', files.base, '--out-dir', out,
        '--batch-size', '2', '--score-thr', '0', '--no-progress',
        '--cfg-options', f'model.detector.language_model.name={files.bert}',
        cwd=tmp_path, ok=False)
    assert res.code == 1, res.out[-3000:]  # one input skipped
    assert 'Traceback' not in res.out
    assert '2 image(s) processed' in res.out
    assert f'skipped {files.root / "missing.png"}: no such file' in res.out
    shapes = json.loads((out / 'preds' / 'good.json').read_text())
    other = json.loads((out / 'preds' / 'good_2.json').read_text())
    assert shapes['task'] == 'shapes' and shapes['classes'] == CLASSES
    assert other['task'] == 'other' and other['classes'] == [
        'triangle', 'round circle', 'big square']
    assert shapes['detections'] != other['detections']
    # a clear message, no traceback, for an empty class list
    res = run(
        'infer.py', DEMO_CONFIGS['gdino'], files.images / 'good.png',
        '--prompt', files.prompts[0], '--base-weights', files.base,
        '--texts', ' ', '--out-dir', tmp_path / 'empty',
        '--cfg-options', f'model.detector.language_model.name={files.bert}',
        cwd=tmp_path, ok=False)
    assert res.code == 1 and 'Traceback' not in res.out, res.out[-3000:]
    assert 'Empty class list' in res.out


def test_unreadable_file_is_skipped(files, tmp_path):
    if os.geteuid() == 0:
        pytest.skip('root reads every file')
    locked = tmp_path / 'locked.png'
    locked.write_bytes((files.images / 'good.png').read_bytes())
    locked.chmod(0)
    infer = PromptInferencer.from_files(
        DEMO_CONFIGS['gdino'], base_weights=files.base,
        prompt=str(files.prompts[0]), cfg_options=_options(files))
    summary = infer([str(locked)], show_progress=False)
    assert summary.skipped[0].reason == 'cannot be read (permission denied)'
