"""The prompt bank served (projects/sdpt/serving, tools/serve.py): requests
of different tasks batched together give what each gets alone, bad uploads
are reported and the rest served, the page under concurrent clients, and the
page used in a real browser (headless Chromium) against PromptInferencer."""
import json
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from helpers import build_model, run, save_base_weights, save_prompt_checkpoint
from PIL import Image

from projects.sdpt.inference import PromptInferencer
from projects.sdpt.serving.service import (
    BankService,
    DetectionRequest,
    ServiceError,
)

CONFIG = 'configs/demo/sdpt_gdino_tiny_demo.py'
TASKS = {'shapes': ['circle', 'square', 'triangle'],
         'two': ['triangle', 'round circle', 'big square']}


@pytest.fixture(scope='module')
def files(demo_root, tmp_path_factory):
    """Base weights, a prompt checkpoint per task (random prompts, the
    task's classes on its card), good images of two sizes and bad ones."""
    root = tmp_path_factory.mktemp('serve')
    model, _ = build_model('gdino', demo_root)
    base = save_base_weights(model, root / 'base.pth')
    prompts = {}
    for seed, (task, classes) in enumerate(TASKS.items()):
        torch.manual_seed(seed)
        with torch.no_grad():
            for param in model.prompt_tuning.parameters():
                param.uniform_(-1, 1)
        prompts[task] = str(root / f'{task}.pth')
        save_prompt_checkpoint(model, prompts[task], iter=39,
                               classes=classes, load_from=base,
                               base_weights=base)
    val = demo_root / 'data' / 'demo' / 'shapes' / 'val'
    images = {}
    for number in (1, 2, 3):
        images[f'img{number}'] = str(root / f'img{number}.png')
        Image.open(val / f'val_{number:04d}.png').convert('RGB').save(
            images[f'img{number}'])
    images['wide'] = str(root / 'wide.png')
    Image.open(images['img1']).resize((160, 96)).save(images['wide'])
    bad = {'text.png': b'not an image', 'empty.png': b''}
    full = open(images['img2'], 'rb').read()
    bad['truncated.png'] = full[:len(full) // 2]
    for name, data in bad.items():
        (root / name).write_bytes(data)
        images[name] = str(root / name)
    bert = str(demo_root / 'data' / 'demo' / 'bert')
    return SimpleNamespace(root=root, base=base, prompts=prompts,
                           images=images, bert=bert,
                           options={'model.detector.language_model.name':
                                    bert})


def _service(files, **kwargs):
    inferencer = PromptInferencer.from_files(
        CONFIG, base_weights=files.base, tasks=files.prompts,
        cfg_options=files.options)
    return BankService(inferencer, **kwargs)


def _single(files, task, image, thr):
    """What tools/infer.py's inferencer finds with one prompt checkpoint."""
    inferencer = PromptInferencer.from_files(
        CONFIG, base_weights=files.base, prompt=files.prompts[task],
        cfg_options=files.options)
    summary = inferencer([image], score_thr=thr, show_progress=False)
    return summary.predictions[0]['detections']


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x['label'] == y['label'] and x['class_name'] == y['class_name']
        assert x['score'] == pytest.approx(y['score'], abs=1e-4)
        assert x['bbox'] == pytest.approx(y['bbox'], abs=0.011)


@pytest.fixture(scope='module')
def service(files):
    return _service(files)


def test_requests_batched_together_get_what_each_gets_alone(files, service):
    img = files.images
    requests = [
        DetectionRequest([img['img1'], img['img2']], task='shapes',
                         score_thr=0.2),
        DetectionRequest([img['img3'], img['wide']], task='two',
                         score_thr=0.2),
        DetectionRequest([img['img2']], classes=['round circle', 'square'],
                         score_thr=0.2),
    ]
    before = service.stats.to_dict()
    together = service.detect(requests)
    stats = service.stats.to_dict()
    # 5 images: tuned 4 (3 of one size in one forward, the wide one alone),
    # base 5 (4 + 1)
    assert stats['forwards'] - before['forwards'] == 4
    assert stats['forward_images'] - before['forward_images'] == 9
    for request, response in zip(requests, together):
        alone = service.detect([request])[0]
        assert [r.name for r in response.results] == list(request.images)
        for mixed, single in zip(response.results, alone.results):
            _assert_same(mixed.base['detections'],
                         single.base['detections'])
            if request.task is None:
                assert mixed.tuned is None and mixed.tuned_drawing is None
                assert mixed.base['classes'] == ['round circle', 'square']
                continue
            _assert_same(mixed.tuned['detections'],
                         single.tuned['detections'])
            assert mixed.tuned_drawing.shape[:2] == (mixed.tuned['height'],
                                                    mixed.tuned['width'])
    # the tuned side is what the inferencer gives with that checkpoint alone
    tuned = together[1].results[0].tuned
    _assert_same(tuned['detections'],
                 _single(files, 'two', files.images['img3'], 0.2))
    assert tuned['classes'] == TASKS['two']
    # and the base side is the base: the method switched off
    assert together[0].results[0].base['detections'] != \
        together[0].results[0].tuned['detections']


def test_bad_uploads_are_reported_and_the_rest_served(files):
    service = _service(files, max_pixels=150 * 150)  # img1: 128 x 128
    img = files.images
    big = str(files.root / 'big.png')
    Image.new('RGB', (200, 120)).save(big)
    response, = service.detect([DetectionRequest(
        [img['text.png'], img['img1'], img['empty.png'],
         img['truncated.png'], big], task='shapes')])
    assert [r.name for r in response.results] == [img['img1']]
    reasons = {osp.basename(s.path): s.reason for s in response.skipped}
    assert reasons['text.png'].startswith('not an image')
    assert reasons['empty.png'] == 'empty file (0 bytes)'
    assert 'truncated' in reasons['truncated.png']
    assert reasons['big.png'].startswith('too large: 200 x 120 pixels')
    # the COCO export of what was served
    coco = response.to_coco('tuned')
    assert [i['file_name'] for i in coco['images']] == [img['img1']]
    assert [c['name'] for c in coco['categories']] == TASKS['shapes']
    assert len(coco['annotations']) == len(
        response.results[0].tuned['detections'])


def test_requests_that_cannot_run_are_refused(service, files):
    image = [files.images['img1']]
    with pytest.raises(ServiceError, match="No task 'pets'"):
        service.detect([DetectionRequest(image, task='pets')])
    with pytest.raises(ServiceError, match='Zero-shot needs class names'):
        service.detect([DetectionRequest(image, classes=[' '])])
    with pytest.raises(ServiceError, match='from 0 to 1'):
        service.detect([DetectionRequest(image, task='shapes',
                                         score_thr=2)])
    card = service.card('two')
    assert card['classes'] == TASKS['two'] and card['method'] == 'SDPTPrompt'
    assert card['base_fingerprint'] == service.fingerprint
    assert card['trainable'] == 32768


def test_serve_tool_refuses_bad_arguments(files):
    result = run('serve.py', CONFIG, '--task', 'shapes', ok=False)
    assert "--task 'shapes': expected NAME=VALUE" in result.out
    result = run('serve.py', CONFIG, '--task', f'a={files.prompts["two"]}',
                 '--task-texts', 'b=x,y', ok=False)
    assert '--task-texts b: no --task of that name' in result.out


# ---- the page, served by tools/serve.py ----------------------------------
@pytest.fixture(scope='module')
def load_test():
    return pytest.importorskip('projects.sdpt.serving.load_test')


@pytest.fixture(scope='module')
def server(files, load_test):
    args = [CONFIG, '--base-weights', files.base,
            '--max-batch-images', '4', '--queue-size', '16',
            '--cfg-options',
            f'model.detector.language_model.name={files.bert}']
    args[1:1] = [f'--task={t}={p}' for t, p in files.prompts.items()]
    process = load_test.ServerProcess(
        args, log_path=str(files.root / 'server.log'))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_page_under_concurrent_clients(server, files, load_test):
    cases = [load_test.LoadCase(task, files.images[image])
             for image in ('img1', 'img2') for task in TASKS]
    reports = load_test.run_load_test(server.url, cases, clients=3,
                                      rounds=2, score_thr=0.2)
    for report in reports.values():
        summary = report.to_dict()
        assert summary['answered'] == summary['requests'], summary
        assert summary['errors'] == 0 and summary['mismatches'] == 0, summary
    assert reports['concurrent'].requests == 6
    assert reports['one_at_a_time'].server['images_per_forward'] == 1
    # a bad upload is answered with its reason; the server goes on
    bad = load_test.request(load_test.Client(server.url, verbose=False),
                            load_test.LoadCase('two',
                                               files.images['text.png']),
                            0.2)
    assert json.loads(bad['payload'])['skipped'][0]['reason'].startswith(
        'not an image')
    again = load_test.request(load_test.Client(server.url, verbose=False),
                              cases[0], 0.2)
    assert 'image(s) detected' in again['message']


@pytest.mark.slow
def test_page_in_a_real_browser(server, files, tmp_path):
    browser = pytest.importorskip('projects.sdpt.serving.browser')
    if browser.find_chromium() is None:
        pytest.skip('no Chromium on this machine (Debian: apt-get install '
                    'chromium)')
    shot = str(tmp_path / 'page.png')
    page = browser.detect_in_browser(
        server.url, 'two', [files.images['img3'], files.images['text.png']],
        score_thr=0.25, screenshot=shot)
    assert '1 image(s) detected' in page.messages
    assert 'text.png' in page.messages and 'not an image' in page.messages
    assert page.pictures >= 2  # base and tuned, side by side
    shown = page.payload['images'][0]
    assert page.payload['task'] == 'two' and shown['name'] == 'img3.png'
    assert shown['tuned']['score_threshold'] == 0.25
    _assert_same(shown['tuned']['detections'],
                 _single(files, 'two', files.images['img3'], 0.25))
    with Image.open(shot) as image:
        assert image.size[0] >= 1000 and image.size[1] >= 600
