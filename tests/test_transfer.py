"""The synthetic grounding corpus and tools/transfer_benchmark.py: the domains
are what the benchmark claims (held-out phrases of seen words, a new
appearance), methods move onto the transfer configs exactly, and the tool
pretrains, caches the base, tunes, evaluates, reports and skips done runs."""
import csv
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT

COUNTS = {'source': dict(train=6, val=4), 'target': dict(train=12, val=4)}


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    from projects.sdpt.datasets.synthetic.corpus import make_synthetic_corpus
    root = tmp_path_factory.mktemp('synthetic')
    make_synthetic_corpus(str(root), counts=COUNTS, size=64, seed=0)
    return root


def _coco(root, domain, split):
    with open(root / domain / 'annotations' / f'instances_{split}.json') as f:
        return json.load(f)


def test_target_phrases_are_new_but_their_words_are_not():
    from projects.sdpt.datasets.synthetic.corpus import (SOURCE_CLASSES,
                                                TARGET_CLASSES)
    assert not set(SOURCE_CLASSES) & set(TARGET_CLASSES)
    assert len(SOURCE_CLASSES) == 12 and len(TARGET_CLASSES) == 4
    source_words = {w for c in SOURCE_CLASSES for w in c.split()}
    for phrase in TARGET_CLASSES:
        assert set(phrase.split()) <= source_words
    # The pretraining config's class list is the corpus's.
    from mmengine.config import Config
    for det in ('glip', 'gdino'):
        cfg = Config.fromfile(osp.join(
            REPO_ROOT, f'configs/transfer/pretrain_{det}_tiny_synthetic.py'))
        assert tuple(cfg.metainfo['classes']) == SOURCE_CLASSES
        cfg = Config.fromfile(
            osp.join(REPO_ROOT, f'configs/transfer/{det}_tiny_synthetic.py'))
        assert tuple(cfg.metainfo['classes']) == TARGET_CLASSES


def test_boxes_are_exact_and_appearance_shifts(corpus):
    from projects.sdpt.datasets.synthetic.corpus import COLOURS
    for domain in ('source', 'target'):
        coco = _coco(corpus, domain, 'train')
        names = {c['id']: c['name'] for c in coco['categories']}
        files = {i['id']: i['file_name'] for i in coco['images']}
        assert {a['image_id'] for a in coco['annotations']} == set(files)
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            assert w == h and x >= 0 and y >= 0 and x + w < 64 and y + h < 64
            colour_name, shape = names[ann['category_id']].split()
            if shape not in ('circle', 'square'):
                continue
            img = np.asarray(
                Image.open(corpus / domain / 'train' /
                           files[ann['image_id']]).convert('RGB'))
            patch = img[y + h // 2 - 1:y + h // 2 + 2,
                        x + w // 2 - 1:x + w // 2 + 2].reshape(-1, 3)
            colour = np.array(COLOURS[colour_name])
            exact = (patch == colour).all(axis=1)
            if domain == 'source':  # flat fill
                assert exact.all()
            else:  # stripes: the colour and its darker shade alternate
                assert exact.any() and not exact.all()


def test_corpus_is_deterministic_and_idempotent(corpus, tmp_path):
    from projects.sdpt.datasets.synthetic.corpus import make_synthetic_corpus
    make_synthetic_corpus(str(tmp_path), counts=COUNTS, size=64, seed=0)
    for domain in ('source', 'target'):
        assert _coco(tmp_path, domain, 'val') == _coco(corpus, domain, 'val')
    mtime = osp.getmtime(tmp_path / 'target/annotations/instances_val.json')
    make_synthetic_corpus(str(tmp_path), counts=COUNTS, size=64, seed=0)
    assert osp.getmtime(
        tmp_path / 'target/annotations/instances_val.json') == mtime


@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_methods_move_onto_the_transfer_config_exactly(det):
    from mmengine.config import Config
    from projects.sdpt.experiments import transfer as tb
    from projects.sdpt.experiments.zoo import zoo_config, zoo_methods
    for method in zoo_methods(det):
        zoo = Config.fromfile(zoo_config(method, det))
        cfg = tb.apply_method(Config.fromfile(tb.transfer_config(det)), det,
                              method)
        assert cfg.model.prompt == zoo.model.get('prompt')
        assert list(cfg.model.extra_trainable) == list(
            zoo.model.get('extra_trainable', []))
        for key in ('lr', 'weight_decay'):
            assert (cfg.optim_wrapper.optimizer[key] ==
                    zoo.optim_wrapper.optimizer[key])
        assert cfg.experiment.method == zoo.experiment.method
        assert bool(cfg.get('evaluate_only')) == (method == 'zero_shot')
        # ... and nothing of the zoo config's data comes along.
        assert cfg.train_dataloader.dataset.data_root.endswith('target/')


def test_pretrain_cache_transfer_report_and_skip(tmp_path):
    """The whole tool at a few iterations on Grounding DINO (the faster of
    the two tiny detectors)."""
    tool = osp.join(REPO_ROOT, 'tools', 'transfer_benchmark.py')
    args = [sys.executable, tool, '--detectors', 'gdino', '--methods',
            'zero_shot', 'sdpt', '--shots', '1', '3', '--iters', '2',
            '--pretrain-iters', 'gdino=2', '--workers', '1', '--root',
            str(tmp_path / 'synthetic'), '--work-dir', str(tmp_path / 'runs')]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '1 base(s) to pretrain, 3 runs' in proc.stdout
    base = tmp_path / 'synthetic' / 'gdino_tiny_synthetic_base.pth'
    meta = json.loads(base.with_suffix('.json').read_text())
    assert meta['iters'] == 2 and 'AP' in meta['source_val']
    with open(tmp_path / 'runs' / 'transfer.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['key'], r['shots']) for r in rows] == [
        ('zero_shot', '0'), ('sdpt', '1'), ('sdpt', '3')]
    assert rows[0]['trainable'] == '0'
    assert int(rows[1]['trainable']) == 32768  # 16 tokens x 1024 x 2 layers
    table = (tmp_path / 'runs' / 'transfer.md').read_text()
    assert '| SDPT | 32,768 |' in table and 'AP, k=3' in table
    assert (tmp_path / 'runs' / 'ap_vs_trainable_params.png').stat().st_size
    # The tuned runs started from the cached base.
    log = (tmp_path / 'runs' / 'workers.log').read_text()
    assert str(base) in log

    # Again: the base is cached and every run is skipped.
    mtime = osp.getmtime(base)
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '0 base(s) to pretrain, 3 runs' in proc.stdout
    assert osp.getmtime(base) == mtime
    with open(tmp_path / 'runs' / 'transfer.csv') as f:
        assert [r['AP'] for r in csv.DictReader(f)] == [r['AP'] for r in rows]
