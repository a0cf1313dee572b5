"""The transfer suite: each shift of the synthetic corpus is what it claims at
the pixel and annotation level, the configs point at the right splits and
carry every method and ablation exactly, learning-rate selection and the
task graph follow the protocol, pretraining is byte-for-byte deterministic,
and tools/transfer_benchmark.py pretrains, tunes, diagnoses, reports and
skips finished runs."""
import copy
import csv
import filecmp
import functools
import hashlib
import inspect
import json
import os
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from mmdet.models.utils.vlfuse_helper import VLFuse
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.structures import InstanceData
from PIL import Image
from transformers import BertConfig, BertTokenizer

from projects.sdpt.datasets.synthetic import demo_assets
from projects.sdpt.datasets.synthetic.corpus import (
    COLOURS,
    CORPUS_BERTS,
    SHIFT_SPLITS,
    SHIFTS,
    SOURCE_CLASSES,
    SOURCE_SPLITS,
    base_names_ann_file,
    corpus_words,
    make_synthetic_corpus,
    shift_dir,
)
from projects.sdpt.detectors import SizedATSSVLFusionHead
from projects.sdpt.experiments import bases, comparison
from projects.sdpt.experiments.ablations import (
    ABLATIONS,
    ADAPTERS,
    MMDET_FINETUNE_KEYS,
)
from projects.sdpt.experiments.bases import base_meta_file, file_sha256
from projects.sdpt.experiments.grid import (
    GridTask,
    function_name,
    resolve_function,
    run_task,
)
from projects.sdpt.experiments.transfer.configs import (
    SHARED_WEIGHT_DECAY,
    apply_method,
    apply_shift,
    read_config,
    recipe_lr,
    set_corpus_root,
    suite_methods,
    transfer_config,
)
from projects.sdpt.experiments.transfer.plan import (
    PRETRAIN,
    RECHECK,
    TUNE,
    ZERO_SHOT,
    TransferPlan,
    cached_run_holds,
    check_protocol,
    is_pretrain,
    make_tasks,
    selected_settings,
)
from projects.sdpt.experiments.transfer.protocol import (
    is_flat,
    lr_schedule,
    next_edge_lr,
    select_lr,
)
from projects.sdpt.experiments.transfer.report import (
    final_rows,
    finished_rows,
    lr_grids,
    machines,
    paired_comparisons,
    sort_rows,
    time_left,
    write_report,
)
from projects.sdpt.experiments.transfer.runs import tune
from projects.sdpt.experiments.zoo import zoo_config, zoo_methods
from projects.sdpt.methods.sdpt import SDPTPrompt
from projects.sdpt.utils.io import atomic_write_json

SIZE = 64
COUNTS = {'source': dict(train=6, val=4),
          'shift': dict(train=12, dev=6, test=6)}


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    make_synthetic_corpus(str(root), counts=COUNTS, size=SIZE, seed=0)
    return root


def _coco(folder, split, suffix=''):
    with open(folder / 'annotations' / f'instances_{split}{suffix}.json') as f:
        return json.load(f)


def _objects(folder, split):
    """(image array, [(drawn-class index, x, y, w)]) of every image."""
    coco = _coco(folder, split)
    by_image = {i['id']: [] for i in coco['images']}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        assert w == h
        by_image[a['image_id']].append((a['category_id'] - 1, x, y, w))
    for image in coco['images']:
        img = np.asarray(Image.open(folder / split / image['file_name'])
                         .convert('RGB'))
        yield img, by_image[image['id']]


def _centre(img, x, y, w):
    """The 3x3 pixels at a shape's centre (inside every shape drawn)."""
    cx, cy = x + w // 2, y + w // 2
    return img[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3)


def _background(img, objects):
    """Pixels outside every object's box (PIL fills both box ends)."""
    keep = np.ones(img.shape[:2], bool)
    for _, x, y, w in objects:
        keep[y:y + w + 1, x:x + w + 1] = False
    return img[keep]


# ---- the corpus -------------------------------------------------------------
def test_every_domain_draws_its_drawn_phrases_and_names_them_its_classes(
        corpus):
    """Every object's centre has the colour of the phrase it is drawn as
    (flat, or the colour and its 45 % shade in stripes), whatever its
    class is called; boxes are squares inside the image."""
    domains = [('source', corpus / 'source', SOURCE_SPLITS, SOURCE_CLASSES,
                SOURCE_CLASSES, 'flat')]
    domains += [(name, Path(shift_dir(str(corpus), name)), SHIFT_SPLITS,
                 shift.classes, shift.drawn, shift.look['texture'])
                for name, shift in SHIFTS.items()]
    for name, folder, splits, classes, drawn, texture in domains:
        for split in splits:
            coco = _coco(folder, split)
            assert [c['name'] for c in coco['categories']] == list(classes)
            assert [c['id'] for c in coco['categories']] == list(
                range(1, len(classes) + 1))
            seen = set()
            for img, objects in _objects(folder, split):
                assert objects  # 1-3 objects per image
                for label, x, y, w in objects:
                    assert x >= 0 and y >= 0 and x + w < SIZE and \
                        y + w < SIZE
                    colour = np.array(COLOURS[drawn[label].split()[0]])
                    exact = (_centre(img, x, y, w) == colour).all(axis=1)
                    if texture == 'flat':
                        assert exact.all(), (name, split, label)
                    else:
                        shade = (colour * 0.45).astype(np.uint8)
                        dark = (_centre(img, x, y, w) == shade).all(axis=1)
                        assert exact.any() and dark.any() and \
                            (exact | dark).all(), (name, split, label)
                    seen.add(label)
            if name != 'source' and split == 'train':
                assert seen == {0, 1, 2, 3}  # every class can be k-shot


def test_vocabulary_shift_names_source_objects_with_unseen_words():
    shift = SHIFTS['vocabulary']
    source_words = {w for c in SOURCE_CLASSES for w in c.split()}
    assert set(shift.drawn) <= set(SOURCE_CLASSES)
    for phrase in shift.classes:
        assert not set(phrase.split()) & source_words, phrase
    # the oracle's names are the base's names of the drawn objects
    assert shift.base_names == shift.drawn


def test_composition_shift_holds_out_phrases_but_no_words():
    shift = SHIFTS['composition']
    source_words = {w for c in SOURCE_CLASSES for w in c.split()}
    assert shift.classes == shift.drawn and len(shift.classes) == 4
    assert not set(shift.classes) & set(SOURCE_CLASSES)
    for phrase in shift.classes:
        assert set(phrase.split()) <= source_words, phrase
    assert shift.base_names is None  # the base has no names for them


def test_realignment_shift_pairs_source_phrases_differently():
    shift = SHIFTS['realignment']
    assert set(shift.classes) <= set(SOURCE_CLASSES)
    assert set(shift.drawn) <= set(SOURCE_CLASSES)
    for name, drawn in zip(shift.classes, shift.drawn):
        assert name != drawn
        # only the colour word moves; the shape word keeps its meaning
        assert name.split()[1] == drawn.split()[1]
    assert shift.base_names == shift.drawn


def test_realignment_pixels_follow_the_drawn_colour_not_the_name(corpus):
    shift = SHIFTS['realignment']
    folder = Path(shift_dir(str(corpus), 'realignment'))
    checked = 0
    for img, objects in _objects(folder, 'test'):
        for label, x, y, w in objects:
            centre = _centre(img, x, y, w)
            drawn = COLOURS[shift.drawn[label].split()[0]]
            named = COLOURS[shift.classes[label].split()[0]]
            assert (centre == drawn).all() and not (centre == named).all(
                axis=1).any()
            checked += 1
    assert checked


def test_appearance_shift_keeps_phrases_and_changes_the_look(corpus):
    """Seen phrases, but striped, smaller, on a tinted gradient: the source
    look's background is pure grey (R = G = B) and its shapes flat; the
    appearance shift's background is coloured."""
    shift = SHIFTS['appearance']
    assert shift.classes == shift.drawn
    assert set(shift.classes) <= set(SOURCE_CLASSES)

    def look(folder, split):
        grey, widths = [], []
        for img, objects in _objects(folder, split):
            bg = _background(img, objects).astype(int)
            grey.append(((bg[:, 0] == bg[:, 1]) &
                         (bg[:, 1] == bg[:, 2])).mean())
            widths += [w for *_, w in objects]
        return np.array(grey), widths

    grey, widths = look(corpus / 'source', 'train')
    assert (grey == 1.0).all()
    assert min(widths) >= int(SIZE * 0.2)
    for name in ('vocabulary', 'composition', 'realignment'):
        grey, _ = look(Path(shift_dir(str(corpus), name)), 'test')
        assert (grey == 1.0).all(), name
    grey, widths = look(Path(shift_dir(str(corpus), 'appearance')),
                        'test')
    assert (grey < 0.5).all()
    assert max(widths) <= int(SIZE * 0.4)


def test_splits_are_disjoint_draws(corpus):
    for name in SHIFTS:
        folder = Path(shift_dir(str(corpus), name))
        digests = []
        for split in SHIFT_SPLITS:
            coco = _coco(folder, split)
            assert len(coco['images']) == COUNTS['shift'][split]
            for image in coco['images']:
                path = folder / split / image['file_name']
                digests.append(hashlib.sha256(path.read_bytes()).digest())
        assert len(set(digests)) == len(digests), name


def test_base_names_file_is_the_test_split_renamed(corpus):
    assert base_names_ann_file('a/instances_test.json') == \
        'a/instances_test_base_names.json'
    for name, shift in SHIFTS.items():
        folder = Path(shift_dir(str(corpus), name))
        renamed = folder / 'annotations' / 'instances_test_base_names.json'
        if not shift.base_names:
            assert not renamed.exists()
            continue
        coco, oracle = _coco(folder, 'test'), _coco(folder, 'test',
                                                   '_base_names')
        assert oracle['images'] == coco['images']
        assert oracle['annotations'] == coco['annotations']
        assert [c['id'] for c in oracle['categories']] == \
            [c['id'] for c in coco['categories']]
        assert [c['name'] for c in oracle['categories']] == list(
            shift.base_names)


def test_corpus_is_deterministic_and_idempotent(corpus, tmp_path):
    make_synthetic_corpus(str(tmp_path), counts=COUNTS, size=SIZE, seed=0)
    files = sorted(
        osp.relpath(osp.join(d, f), tmp_path)
        for d, _, names in os.walk(tmp_path) for f in names
        if f.endswith('.json') and not osp.basename(d).startswith('bert'))
    assert len(files) == 2 + 4 * 3 + 2  # + the two oracle files
    for rel in files:
        assert filecmp.cmp(tmp_path / rel, corpus / rel, shallow=False), rel
    for split in ('train', 'val'):
        for image in _coco(corpus / 'source', split)['images']:
            rel = osp.join('source', split, image['file_name'])
            assert filecmp.cmp(tmp_path / rel, corpus / rel, shallow=False)
    mtimes = {rel: osp.getmtime(tmp_path / rel) for rel in files}
    make_synthetic_corpus(str(tmp_path), counts=COUNTS, size=SIZE, seed=0)
    assert {rel: osp.getmtime(tmp_path / rel) for rel in files} == mtimes
    # another seed draws other images
    other = tmp_path / 'other'
    make_synthetic_corpus(str(other), counts=COUNTS, size=SIZE, seed=1,
                          shifts=())
    assert _coco(other / 'source', 'val') != _coco(corpus / 'source', 'val')


def test_a_tiny_bert_is_written_whole(tmp_path, monkeypatch):
    out = tmp_path / 'bert'
    out.mkdir()  # what an interrupted write of an older version left
    (out / 'vocab.txt').write_text('[PAD]\n')
    demo_assets.make_tiny_bert(str(out), hidden_size=64)
    assert os.listdir(tmp_path) == ['bert']  # no temporary folder left
    weights = (out / 'model.safetensors').read_bytes()
    again = tmp_path / 'again'
    demo_assets.make_tiny_bert(str(again), hidden_size=64)
    assert (again / 'model.safetensors').read_bytes() == weights  # seeded

    def interrupted(out_dir, *args):
        (Path(out_dir) / 'config.json').write_text('{}')
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_assets, '_write_tiny_bert', interrupted)
    with pytest.raises(KeyboardInterrupt):
        demo_assets.make_tiny_bert(str(tmp_path / 'cut'), hidden_size=64)
    assert sorted(os.listdir(tmp_path)) == ['again', 'bert']


def test_tiny_berts_read_every_corpus_word_as_one_token(corpus):
    words = corpus_words()
    assert {'crimson', 'jade', 'azure', 'amber', 'red', 'cross'} <= set(words)
    for name, hidden_size in CORPUS_BERTS.items():
        tokenizer = BertTokenizer.from_pretrained(str(corpus / name))
        for word in words:
            assert tokenizer.tokenize(word) == [word]
        config = BertConfig.from_pretrained(str(corpus / name))
        assert config.hidden_size == hidden_size
        assert config.hidden_size // config.num_attention_heads == 64


# ---- configs ----------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _loaded(det, kind):
    return Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'transfer', f'{kind}{det}_tiny_synthetic.py'))


def _cfg(det, kind=''):
    """A fresh copy of a transfer config (each file is parsed once)."""
    return copy.deepcopy(_loaded(det, kind))


@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_transfer_config_validates_on_dev_and_tests_on_test(det):
    cfg = _cfg(det)
    root = 'data/synthetic/shifts/composition/'
    classes = SHIFTS['composition'].classes
    assert tuple(cfg.metainfo['classes']) == classes
    train = cfg.train_dataloader.dataset
    assert train.data_root == root and tuple(
        train.metainfo['classes']) == classes
    assert train.ann_file == 'annotations/instances_train_1shot_seed3.json'
    for loader, evaluator, split in (
            (cfg.val_dataloader, cfg.val_evaluator, 'dev'),
            (cfg.test_dataloader, cfg.test_evaluator, 'test')):
        ds = loader.dataset
        assert ds.data_root == root
        assert ds.ann_file == f'annotations/instances_{split}.json'
        assert ds.data_prefix['img'] == f'{split}/'
        assert tuple(ds.metainfo['classes']) == classes
        assert evaluator.ann_file == root + ds.ann_file


@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_pretrain_config_trains_everything_on_the_source_domain(det):
    cfg = _cfg(det, 'pretrain_')
    root = 'data/synthetic/source/'
    assert tuple(cfg.metainfo['classes']) == SOURCE_CLASSES
    assert cfg.train_dataloader.dataset.data_root == root
    assert cfg.train_dataloader.dataset.ann_file == \
        'annotations/instances_train.json'
    assert tuple(cfg.train_dataloader.dataset.metainfo['classes']) == \
        SOURCE_CLASSES
    # in-process loading, part of what keeps pretraining deterministic
    assert cfg.train_dataloader.num_workers == 0
    for loader, evaluator in ((cfg.val_dataloader, cfg.val_evaluator),
                              (cfg.test_dataloader, cfg.test_evaluator)):
        assert loader.dataset.data_root == root
        assert loader.dataset.ann_file == 'annotations/instances_val.json'
        assert loader.dataset.data_prefix['img'] == 'val/'
        assert evaluator.ann_file == root + 'annotations/instances_val.json'
    assert cfg.model.prompt is None and cfg.model.extra_trainable == ['.*']
    assert cfg.load_from is None


@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_apply_shift_and_corpus_root_move_every_path(det, tmp_path):
    root = str(tmp_path / 'corpus')
    for name, shift in SHIFTS.items():
        cfg = set_corpus_root(_cfg(det), root)
        apply_shift(cfg, root, name, 10, 30)
        data_root = f'{root}/shifts/{name}/'
        assert tuple(cfg.metainfo['classes']) == shift.classes
        train = cfg.train_dataloader.dataset
        assert (train.data_root, train.ann_file) == (
            data_root, 'annotations/instances_train_10shot_seed30.json')
        for loader, evaluator, split in (
                (cfg.val_dataloader, cfg.val_evaluator, 'dev'),
                (cfg.test_dataloader, cfg.test_evaluator, 'test')):
            ds = loader.dataset
            assert ds.data_root == data_root
            assert tuple(ds.metainfo['classes']) == shift.classes
            assert ds.data_prefix['img'] == f'{split}/'
            assert evaluator.ann_file == \
                f'{data_root}annotations/instances_{split}.json'
        assert (cfg.shots, cfg.seed) == (10, 30)
    # no path is left at the default corpus root, the text encoder included
    flat = json.dumps(cfg.to_dict(), default=str)
    assert 'data/synthetic/' not in flat.replace(root, '')
    text_encoder = {'gdino': 'bert', 'glip': 'bert_h256'}[det]
    assert cfg.model.detector.language_model.name == f'{root}/{text_encoder}'


def _without_method(cfg):
    """The config's dict without what a method may set."""
    d = cfg.to_dict()
    d['model'] = {k: v for k, v in d['model'].items()
                  if k not in ('prompt', 'extra_trainable')}
    d['optim_wrapper']['optimizer'] = {
        k: v for k, v in d['optim_wrapper']['optimizer'].items()
        if k not in ('lr', 'weight_decay')}
    d['experiment'] = {k: v for k, v in d['experiment'].items()
                       if k != 'method'}
    d.pop('evaluate_only', None)
    return d


@pytest.mark.slow
@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_methods_move_onto_the_transfer_config_exactly(det):
    untouched = _without_method(_cfg(det))
    methods = zoo_methods(det)
    assert {'zero_shot', 'sdpt', 'full_ft', 'bitfit'} <= set(methods)
    for method in methods:
        zoo = Config.fromfile(zoo_config(method, det))
        cfg = apply_method(_cfg(det), det, method, weight_decay='recipe')
        assert cfg.model.prompt == zoo.model.get('prompt')
        assert list(cfg.model.extra_trainable) == list(
            zoo.model.get('extra_trainable', []))
        for key in ('lr', 'weight_decay'):
            assert (cfg.optim_wrapper.optimizer[key] ==
                    zoo.optim_wrapper.optimizer[key])
        # the suite's own rule: one weight decay for every method
        shared = apply_method(_cfg(det), det, method)
        assert shared.optim_wrapper.optimizer.weight_decay == \
            SHARED_WEIGHT_DECAY
        assert shared.optim_wrapper.optimizer.lr == \
            zoo.optim_wrapper.optimizer.lr
        assert cfg.experiment.method == zoo.experiment.method
        assert bool(cfg.get('evaluate_only')) == (method == 'zero_shot')
        # ... and nothing else: the transfer data, detector and schedule
        assert _without_method(cfg) == untouched, method


@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_ablations_change_only_what_they_name(det):
    """Each ablation is the suite's SDPT with one change: its prompt
    options (real options of SDPTPrompt), the detection head training, or
    no prompt at all; full fine-tuning's variant adds mmdet's
    parameter-wise fine-tuning options and nothing else."""
    options = set(inspect.signature(SDPTPrompt.__init__).parameters)
    sdpt = apply_method(_cfg(det), det, 'sdpt')
    head = ADAPTERS[det]().detection_head_patterns()
    assert set(ABLATIONS) <= set(suite_methods(det))
    full_ft = apply_method(_cfg(det), det, 'full_ft')
    mmdet = apply_method(_cfg(det), det, 'full_ft_mmdet')
    assert mmdet.optim_wrapper.paramwise_cfg.custom_keys == \
        MMDET_FINETUNE_KEYS[det]
    assert recipe_lr(det, 'full_ft_mmdet') == recipe_lr(det, 'full_ft')
    del mmdet.optim_wrapper['paramwise_cfg']
    mmdet.experiment.method = full_ft.experiment.method
    assert mmdet.to_dict() == full_ft.to_dict()
    for name, spec in ABLATIONS.items():
        if spec.get('base', 'sdpt') != 'sdpt':
            continue
        cfg = apply_method(_cfg(det), det, name)
        if spec.get('no_prompt'):
            assert cfg.model.prompt is None
        else:
            change = spec.get('prompt', {})
            assert set(change) <= options, name
            assert cfg.model.prompt == dict(sdpt.model.prompt, **change)
        assert list(cfg.model.extra_trainable) == list(
            sdpt.model.extra_trainable) + (head if spec.get('head') else [])
        assert cfg.experiment.method == spec['label']
        assert cfg.optim_wrapper.optimizer == sdpt.optim_wrapper.optimizer
        assert _without_method(cfg) == _without_method(sdpt), name
    # the same learning-rate grid as SDPT's
    assert recipe_lr(det, 'sdpt_k8') == recipe_lr(det, 'sdpt') == \
        sdpt.optim_wrapper.optimizer.lr
    assert apply_method(_cfg(det), det, 'sdpt_k8').model.prompt[
        'num_tokens'] == 8
    assert apply_method(_cfg(det), det, 'head_only').model.prompt is None


@pytest.mark.slow
@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_head_ablations_build_and_train_the_head(det, corpus):
    """The head patterns match the detector: head_only trains exactly the
    head, sdpt_with_head the head and the prompts."""
    register_all_modules()
    head = ADAPTERS[det]().detection_head_patterns()
    for name in ('head_only', 'sdpt_with_head'):
        cfg = set_corpus_root(apply_method(_cfg(det), det, name),
                              str(corpus))
        model = MODELS.build(cfg.model)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        in_head = {n for n, _ in model.named_parameters()
                   if any(re.search(p, n) for p in head)}
        prompts = {n for n in trainable if n.startswith('prompt_tuning.')}
        assert in_head and trainable == in_head | prompts
        assert bool(prompts) == (name == 'sdpt_with_head')


def test_glip_transfer_base_is_glip_with_a_narrower_fusion(corpus):
    """The GLIP of the transfer suite: mmdet's GLIP whose VLFuse blocks
    take the text encoder's width (256) and a 1024-wide attention, small
    enough that its fp16 base fits in the repository (30 MB); SDPT finds
    the fusion layer and its tokens get gradients through it."""
    register_all_modules()
    cfg = set_corpus_root(_cfg('glip'), str(corpus))
    model = MODELS.build(cfg.model)
    head = model.bbox_head
    assert isinstance(head, SizedATSSVLFusionHead)
    fuses = [m for m in head.modules() if isinstance(m, VLFuse)]
    assert len(fuses) == 1
    attn = fuses[0].b_attn.attn
    assert (attn.v_dim, attn.l_dim, attn.embed_dim, attn.num_heads) == (
        256, 256, 1024, 8)
    detector_params = sum(p.numel() for n, p in model.named_parameters()
                          if not n.startswith('prompt_tuning.'))
    assert 2 * detector_params < 30e6
    prototypes = model.prompt_tuning.prototypes
    assert [p.tokens.shape for p in prototypes.values()] == [(16, 1024)]

    # one training step: a finite loss and gradients on the tokens only
    sample = DetDataSample(metainfo=dict(
        img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64),
        scale_factor=(1.0, 1.0), batch_input_shape=(64, 64)))
    sample.text = tuple(cfg.metainfo['classes'])
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[8., 8., 30., 30.]]), labels=torch.tensor([1]))
    model.train()
    losses = model.loss(torch.randn(1, 3, 64, 64), [sample])
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith('prompt_tuning.') for n in grads)


def test_sized_glip_head_needs_fusion_and_divisible_heads(corpus):
    register_all_modules()
    head = set_corpus_root(_cfg('glip'), str(corpus)).model.detector[
        'bbox_head']
    with pytest.raises(ValueError, match='multiple of'):
        MODELS.build(dict(head, fusion_num_heads=7))
    with pytest.raises(ValueError, match='early_fuse=True'):
        MODELS.build(dict(head, early_fuse=False))


# ---- the protocol -----------------------------------------------------------
def _row(lr, dev, seed=3, **kw):
    return dict(detector='D', shift='vocabulary', key='sdpt', method='SDPT',
                shots=1, seed=seed, lr=lr, recipe_lr=1e-2, dev_AP=dev,
                AP=dev, **kw)


def test_select_lr_takes_the_best_dev_ap_and_breaks_ties_towards_the_recipe():
    rows = [_row(1e-3, 0.2), _row(1e-2, 0.3), _row(1e-1, 0.4)]
    assert select_lr(rows, 1e-2) == 1e-1
    # equal dev AP: the learning rate nearest the recipe, on a log scale
    rows = [_row(1e-3, 0.3), _row(1e-2, 0.3), _row(1e-1, 0.3)]
    assert select_lr(rows, 1e-2) == 1e-2
    assert select_lr(rows[::-1], 1e-2) == 1e-2
    assert select_lr([_row(1e-3, 0.3), _row(1e-1, 0.3)], 2e-3) == 1e-3
    # lr 0 (the method as initialised) takes part, and loses ties
    assert select_lr([_row(0.0, 0.3)], 1e-2) == 0.0
    assert select_lr([_row(0.0, 0.3), _row(1.0, 0.3)], 1e-2) == 1.0
    # a run without dev AP loses to any run with one
    assert select_lr([_row(1e-2, None), _row(1e-1, 0.0)], 1e-2) == 1e-1
    # rows without a learning rate (zero-shot) do not take part
    assert select_lr([dict(lr='', dev_AP=1.0), _row(1e-3, 0.1)],
                     1e-2) == 1e-3
    assert select_lr([dict(lr='', dev_AP=1.0)], 1e-2) is None
    assert select_lr([], 1e-2) is None


def test_the_lr_is_chosen_on_the_mean_dev_ap_of_the_selection_seeds():
    rows = [_row(1e-3, 0.50, seed=1), _row(1e-2, 0.40, seed=1),
            _row(1e-3, 0.10, seed=2), _row(1e-2, 0.38, seed=2)]
    # seed 1 alone would pick 1e-3; the mean over both seeds picks 1e-2
    assert select_lr(rows[:2], 1e-2) == 1e-3
    assert select_lr(rows, 1e-2) == 1e-2
    # flat is judged on the means: each seed moves, their mean does not
    seesaw = [_row(1e-3, 0.3, seed=1), _row(1e-2, 0.1, seed=1),
              _row(1e-3, 0.1, seed=2), _row(1e-2, 0.3, seed=2)]
    assert is_flat(seesaw) and not is_flat(seesaw[:2])
    assert next_edge_lr(seesaw, 1e-2, 10.0) == 0.1  # none above: up


def test_next_edge_lr_goes_one_step_past_the_end_where_the_best_sits():
    grid = [_row(1e-3, 0.2), _row(1e-2, 0.3), _row(1e-1, 0.4)]
    assert next_edge_lr(grid, 1e-2, 10.0) == 1.0
    assert next_edge_lr(grid[:1] + [_row(1e-2, 0.1), _row(1e-1, 0.0)],
                        1e-2, 10.0) == 1e-4
    # inside, or a tie settled at the recipe: nothing more to try
    assert next_edge_lr([_row(1e-3, 0.2), _row(1e-2, 0.5), _row(1e-1, 0.4)],
                        1e-2, 10.0) is None
    # a flat grid (dev APs within FLAT_DEV_AP) cannot choose: it steps past
    # the side with fewer learning rates beyond the recipe (up when even),
    # so two steps try both sides, whatever the tie chose
    assert next_edge_lr([_row(lr, 0.0) for lr in (1e-3, 1e-2, 1e-1)],
                        1e-2, 10.0) == 1.0
    flat = [_row(1e-3, 0.081), _row(1e-2, 0.081), _row(1e-1, 0.08)]
    assert next_edge_lr(flat, 1e-2, 10.0) == 1.0
    assert next_edge_lr(flat + [_row(1.0, 0.085)], 1e-2, 10.0) == 1e-4
    assert next_edge_lr(flat[::-1], 1e-1, 10.0) == 1.0  # none above: up
    assert next_edge_lr(flat + [_row(1.0, 0.03)], 1e-2, 10.0) is None
    # just past the tolerance, it is a best at the bottom again
    assert next_edge_lr([_row(1e-3, 0.092), _row(1e-2, 0.081),
                         _row(1e-1, 0.08)], 1e-2, 10.0) == 1e-4
    # an extension that lost puts the best inside again
    assert next_edge_lr(grid + [_row(1.0, 0.1)], 1e-2, 10.0) is None
    assert next_edge_lr(grid + [_row(1.0, 0.5)], 1e-2, 10.0) == 10.0
    # skipped extensions and single runs take no part
    assert next_edge_lr(grid + [dict(skipped='inside', lr=None)], 1e-2,
                        10.0) == 1.0
    assert next_edge_lr([_row(1e-2, 0.3)], 1e-2, 10.0) is None
    assert next_edge_lr([], 1e-2, 10.0) is None


def _write_rows(folder, lr_devs):
    """One result file per (lr, dev AP), as a grid's runs leave them."""
    files = []
    for lr, dev in lr_devs:
        files.append(str(folder / f'{lr}.json'))
        with open(files[-1], 'w') as f:
            json.dump(_row(lr, dev), f)
    return files


def test_schedules_are_constant_or_warm_up_then_cosine_to_zero():
    assert lr_schedule('constant', 200) == [
        dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    warmup, cosine = lr_schedule('cosine', 200)
    assert (warmup['type'], warmup['begin'], warmup['end']) == \
        ('LinearLR', 0, 20)
    assert (cosine['type'], cosine['begin'], cosine['end'],
            cosine['T_max'], cosine['eta_min']) == \
        ('CosineAnnealingLR', 20, 200, 180, 0.0)
    with pytest.raises(ValueError, match='choose one of'):
        lr_schedule('step', 200)


def test_a_work_dir_holds_runs_of_one_protocol(tmp_path):
    pinned = dict(numerics='pinned', schedule='constant', iters=200,
                  weight_decay='shared', selection_seeds=[1, 2])
    check_protocol(str(tmp_path), pinned)
    check_protocol(str(tmp_path), dict(pinned))  # the same: fine
    with pytest.raises(SystemExit, match='numerics: pinned there, native'):
        check_protocol(str(tmp_path), dict(pinned, numerics='native'))
    # a field the request lacks is named too
    with pytest.raises(SystemExit, match=r'iters: 200 there, None asked\)'):
        check_protocol(str(tmp_path), {k: v for k, v in pinned.items()
                                       if k != 'iters'})
    old = tmp_path / 'old'
    atomic_write_json({'AP': 0.5}, str(old / 'gdino' / 'realignment' /
                                      'sdpt' / 'k10_seed3_lr1' /
                                      'metrics.json'))
    with pytest.raises(SystemExit, match='before suites recorded'):
        check_protocol(str(old), pinned)
    # a protocol recorded before weight decay and selection seeds were
    # part of it: each zoo config's decay, the first seed selecting
    legacy = tmp_path / 'legacy'
    atomic_write_json(dict(numerics='pinned', schedule='constant',
                           iters=200), str(legacy / 'protocol.json'))
    check_protocol(str(legacy), dict(pinned, weight_decay='recipe',
                                     selection_seeds=None))
    with pytest.raises(SystemExit, match='weight_decay: recipe there'):
        check_protocol(str(legacy), dict(pinned, selection_seeds=None))


def test_a_cached_decision_is_rechecked_against_the_current_rules(tmp_path):
    files = _write_rows(tmp_path, ((1e-3, 0.081), (1e-2, 0.081),
                                   (1e-1, 0.08)))
    args = dict(det='gdino', shift='vocabulary', method='sdpt', shots=1,
                seed=3, iters=2, root=str(tmp_path), base='missing.pth')
    edge = GridTask('edge', str(tmp_path / 'edge'), 'x:tune',
                    dict(args, edge_step=10.0, edge_of=files))
    # a flat grid goes past its end: an old "inside, skipped" no longer holds
    assert not cached_run_holds(edge, dict(skipped='inside', lr=None))
    assert cached_run_holds(edge, _row(1.0, 0.07))
    seed = GridTask('seed', str(tmp_path / 'seed'), 'x:tune',
                    dict(args, seed=30, candidates=files))
    assert cached_run_holds(seed, _row(1e-2, 0.5, seed=30))
    assert not cached_run_holds(seed, _row(1e-3, 0.5, seed=30))
    # a candidate missing: nothing to decide from, so it does not hold
    missing = GridTask('seed', str(tmp_path / 'seed'), 'x:tune', dict(
        args, seed=30, candidates=files + [str(tmp_path / 'none.json')]))
    assert not cached_run_holds(missing, _row(1e-2, 0.5, seed=30))


def test_an_extension_inside_the_grid_trains_nothing(tmp_path):
    files = _write_rows(tmp_path, ((1e-3, 0.2), (1e-2, 0.5), (1e-1, 0.4)))
    task = GridTask('edge', str(tmp_path / 'edge'), 'x:tune', dict(
        det='gdino', shift='vocabulary', method='sdpt', shots=1, seed=3,
        iters=2, root=str(tmp_path), base='missing.pth', edge_step=10.0,
        edge_of=files))
    result = tune(task)
    assert result['lr'] is None and 'inside' in result['skipped']
    assert not (tmp_path / 'edge').exists()


def test_lr_grids_count_extensions_and_selections_at_an_end():
    inside = [_row(1e-3, 0.2), _row(1e-2, 0.5), _row(1e-1, 0.4)]
    extended = [dict(r, key='text') for r in inside[:2]] + [
        dict(_row(1e-1, 0.6), key='text'),
        dict(_row(1.0, 0.7), key='text', edge=True),
        dict(_row(10.0, 0.8), key='text', edge=True)]
    fixed = [dict(_row(1e-2, 0.5), key='visual')]
    skipped = dict(skipped='inside', lr=None)
    grids = lr_grids(inside + extended + fixed +
                     [dict(_row(1e-2, 0.1, seed=30))])
    assert grids == [dict(tried=[1e-3, 1e-2, 1e-1], grid=3, chosen=1e-2,
                          flat=False),
                     dict(tried=[1e-3, 1e-2, 1e-1, 1.0, 10.0], grid=3,
                          chosen=10.0, flat=False)]
    # skipped extensions are not runs
    assert final_rows(inside + [skipped]) == [
        dict(inside[1], selected=True)]


def test_final_rows_report_the_selected_lr_on_every_seed():
    zero = dict(detector='D', shift='vocabulary', key='zero_shot', shots=0,
                seed='', lr='', dev_AP=0.1, AP=0.1)
    lr_runs = [_row(1e-3, 0.2), _row(1e-2, 0.3), _row(1e-1, 0.5)]
    others = [_row(1e-1, 0.45, seed=30), _row(1e-1, 0.4, seed=300)]
    # another k is its own cell, with its own selection
    k10 = [dict(_row(1e-3, 0.6), shots=10), dict(_row(1e-2, 0.1), shots=10),
           dict(_row(1e-3, 0.5, seed=30), shots=10)]
    out = final_rows([zero] + lr_runs + others + k10)
    assert out[0] == zero
    tuned = [(r['shots'], r['seed'], r['lr']) for r in out[1:]]
    assert sorted(tuned) == [(1, 3, 1e-1), (1, 30, 1e-1), (1, 300, 1e-1),
                             (10, 3, 1e-3), (10, 30, 1e-3)]
    assert all(r['selected'] for r in out[1:])


def test_sdpt_is_compared_with_each_method_on_the_same_seeds():
    def runs(key, aps, method=None):
        return [dict(_row(1e-2, ap, seed=seed), key=key,
                     method=method or key) for seed, ap in
                zip((3, 30, 300, 3000, 30000), aps)]
    zero = dict(_row('', 0.06, seed=''), key='zero_shot', method='zero-shot')
    rows = ([zero] + runs('sdpt', (0.80, 0.78, 0.82, 0.79, 0.81)) +
            runs('text', (0.60, 0.62, 0.57, 0.61, 0.59), 'CoOp') +
            runs('full_ft', (0.79, 0.80, 0.81, 0.78, 0.83)) +
            runs('bitfit', (0.70, 0.72, 0.69, 0.71, 0.68))[:4])
    found = {c['key']: c for c in paired_comparisons(rows)}
    assert found['zero_shot']['verdict'] == 'higher'
    assert found['zero_shot']['difference'] == pytest.approx(0.74)
    assert found['text']['verdict'] == 'higher'
    assert found['text']['method'] == 'CoOp'
    assert found['full_ft']['verdict'] == 'no detectable difference'
    assert found['bitfit']['n'] == 4  # the seeds both have
    assert found['text']['difference'] == pytest.approx(0.202)


def test_the_report_names_the_cpu_models_of_each_table():
    def run(shift, cpu=None):
        row = dict(_row(1e-2, 0.3), detector='G', shift=shift, key='sdpt')
        return dict(row, platform=dict(cpu=cpu)) if cpu else row
    rows = [run('vocabulary', 'AMD EPYC'), run('vocabulary', 'AMD EPYC'),
            run('vocabulary', 'Intel Xeon'), run('realignment')]
    assert machines(rows) == [
        dict(detector='G', shift='vocabulary',
             cpus={'AMD EPYC': 2, 'Intel Xeon': 1}),
        dict(detector='G', shift='realignment', cpus={'not recorded': 1})]


def test_report_tables_follow_the_zoo_not_the_run_order(tmp_path):
    def run(det, shift, key, lr=1e-2, seed=3):
        return dict(_row(lr, 0.3, seed=seed), detector=det, shift=shift,
                    key=key, method=key, trainable=10)
    zero = dict(run('G', 'vocabulary', 'zero_shot'), shots=0, seed='',
                lr='')
    # run order: the ablation, then SDPT, then zero-shot; realignment first
    rows = [run('G', 'realignment', 'sdpt'), run('G', 'vocabulary',
                                                  'sdpt_k8'),
            run('G', 'vocabulary', 'sdpt'), zero, run('A', 'vocabulary',
                                                      'sdpt')]
    assert [(r['detector'], r['shift'], r['key']) for r in sort_rows(rows)] \
        == [('G', 'vocabulary', 'zero_shot'), ('G', 'vocabulary', 'sdpt'),
            ('G', 'vocabulary', 'sdpt_k8'), ('G', 'realignment', 'sdpt'),
            ('A', 'vocabulary', 'sdpt')]  # detectors as they ran
    markdown = write_report(rows, [1], str(tmp_path), {})
    table = [line.split('|')[1].strip() for line in markdown.splitlines()
             if line.startswith('| ') and 'method' not in line
             and not line.startswith('| k')]
    assert table == ['zero_shot', 'sdpt', 'sdpt_k8', 'sdpt', 'sdpt']
    # SDPT against the others, paired on seeds: one seed is too few
    assert '| k=1 | sdpt_k8 | 1 | +0.000 | too few paired seeds |' in markdown
    assert '| k=1 | zero-shot | 1 | +0.000 | too few paired seeds |' in \
        markdown
    # the same comparisons, for the documentation's generated tables
    comparisons = json.loads((tmp_path / 'comparisons.json').read_text())
    assert comparisons['comparisons'][:2] == [
        {'detector': 'G', 'shift': 'vocabulary', 'k': 1,
         'method': 'zero-shot', 'seeds': 1, 'SDPT - it': '+0.000',
         'verdict': 'too few paired seeds'},
        {'detector': 'G', 'shift': 'vocabulary', 'k': 1, 'method': 'sdpt_k8',
         'seeds': 1, 'SDPT - it': '+0.000',
         'verdict': 'too few paired seeds'}]
    assert markdown.index('**vocabulary**') < markdown.index(
        '**realignment**')
    assert 'Machines (CPU model: runs; pinned numerics repeat bit for bit ' \
        'only on one model): G realignment: not recorded 1; G vocabulary: ' \
        'not recorded 3; A vocabulary: not recorded 1.' in markdown
    assert 'Not finished yet' not in markdown
    # the cells still running are said to be left out
    pending = write_report(rows, [1], str(tmp_path), {},
                           dict(unfinished=3, runs_left=1234))
    assert 'Not finished yet, so left out: 3 cells of the suite this report ' \
        'was asked for, with 1,234 runs to do.' in pending


def _tasks(tmp_path, base_exists=True, fixed_lrs=None, seeds=(3, 30, 300),
           extra_seeds=(), methods=('zero_shot', 'sdpt'), results_root=None):
    base = tmp_path / 'base.pth'
    if base_exists:
        base.write_bytes(b'')
    return make_tasks(TransferPlan(
        detectors=['gdino'], shifts=['vocabulary', 'appearance'],
        methods=list(methods), root=str(tmp_path / 'corpus'),
        work_root=str(tmp_path / 'runs'), bases={'gdino': str(base)},
        pretrain_iters={'gdino': 7}, shots=[1], seeds=list(seeds),
        extra_seeds=list(extra_seeds),
        lr_factors=[0.1, 1.0, 10.0], fixed_lrs=fixed_lrs or {}, iters=2,
        results_root=results_root))


def test_make_tasks_select_on_their_own_seeds_then_run_the_reported_ones(
        tmp_path):
    tasks = _tasks(tmp_path)
    names = [t.name for t in tasks]
    assert len(set(names)) == len(names)
    assert len({t.result_file for t in tasks}) == len(tasks)
    assert not any(is_pretrain(t) for t in tasks)
    by_name = {t.name: t for t in tasks}
    recipe = recipe_lr('gdino', 'sdpt')
    for shift in ('vocabulary', 'appearance'):
        zero = by_name[f'gdino {shift} zero_shot']
        assert zero.function.endswith(':evaluate_zero_shot')
        assert zero.after == ()
        mine = [t for t in tasks if t.args.get('shift') == shift
                and t.args.get('method') == 'sdpt']
        selection = [t for t in mine if t.args.get('role') == 'selection']
        assert {t.args['seed'] for t in selection} == {1, 2}
        grid = [t for t in selection if 'edge_of' not in t.args]
        for seed in (1, 2):
            assert sorted(t.args['lr'] for t in grid
                          if t.args['seed'] == seed) == pytest.approx(
                [recipe * 0.1, recipe, recipe * 10])
        assert all(t.after == () and 'candidates' not in t.args
                   for t in grid)
        # then two steps past the grid's end, each on both selection seeds
        # and after everything before
        edges = selection[len(grid):]
        assert [t.name.rsplit('_', 2)[1:] for t in edges] == [
            ['select1', 'edge1'], ['select2', 'edge1'],
            ['select1', 'edge2'], ['select2', 'edge2']]
        for i, t in enumerate(edges):
            before = grid + edges[:2 * (i // 2)]
            assert 'lr' not in t.args
            assert t.args['edge_step'] == pytest.approx(10.0)
            assert t.args['edge_of'] == [f.result_file for f in before]
            assert t.after == tuple(f.name for f in before)
            assert t.recheck == RECHECK
        assert all(t.recheck is None for t in grid)
        reported = [t for t in mine if t.args.get('role') != 'selection']
        assert [t.args['seed'] for t in reported] == [3, 30, 300]
        for t in reported:
            assert t.name.endswith('_selected') and 'lr' not in t.args
            assert set(t.after) == {f.name for f in selection}
            assert t.args['candidates'] == [f.result_file
                                            for f in selection]
            assert t.recheck == RECHECK
        for t in mine:
            assert t.function.endswith(':tune')
            assert (t.args['iters'], t.args['shots']) == (2, 1)
            assert t.args['weight_decay'] == 'shared'
            assert t.result_file == osp.join(t.work_dir, 'metrics.json')


def test_extra_seeds_run_only_where_the_interval_is_too_wide(tmp_path):
    """A cell's extra seeds: the selected setting, after the reported seeds,
    named as reported; each trains only when the reported seeds' interval is
    wider than the target, and a cached decision is checked again."""
    tasks = _tasks(tmp_path, extra_seeds=(7, 70),
                   methods=('zero_shot', 'sdpt', 'text'))
    mine = [t for t in tasks if t.args.get('shift') == 'vocabulary'
            and t.args.get('method') == 'text']
    reported = [t for t in mine if t.args.get('role') != 'selection'
                and t.args['seed'] in (3, 30, 300)]
    extra = [t for t in mine if t.args['seed'] in (7, 70)]
    assert [t.args['seed'] for t in extra] == [7, 70]
    for t in extra:
        assert t.name.endswith(f'k1_seed{t.args["seed"]}_selected')
        assert t.args['widen_of'] == [r.result_file for r in reported]
        assert t.args['candidates'] == reported[0].args['candidates']
        assert set(t.after) >= {r.name for r in reported} | set(
            reported[0].after)
        assert t.recheck == RECHECK
    # SDPT, the reference of the paired comparisons, runs every extra seed
    reference = [t for t in tasks if t.args.get('method') == 'sdpt'
                 and t.args['seed'] in (7, 70)]
    assert len(reference) == 4 and not any(
        'widen_of' in t.args for t in reference)
    assert all(t.args['candidates'] and t.recheck == RECHECK
               for t in reference)
    fixed = [t for t in _tasks(tmp_path, fixed_lrs={'text': 0.05},
                               extra_seeds=(7, ),
                               methods=('sdpt', 'text'))
             if t.args['seed'] == 7]
    assert [(t.args['method'], 'widen_of' in t.args, t.recheck) for t in
            fixed] == [('sdpt', False, RECHECK)] * 2 + [
                ('text', True, RECHECK)] * 2
    assert all(t.args['lr'] == 0.05 for t in fixed[2:])
    assert fixed[2].name.endswith('k1_seed7_lr0.05')
    fixed_reference = [t for t in _tasks(
        tmp_path, fixed_lrs={'sdpt': 0.05}, extra_seeds=(7, ))
        if t.args.get('seed') == 7]
    assert len(fixed_reference) == 2 and all(
        t.recheck is None and t.args['lr'] == 0.05 for t in fixed_reference)
    # decisions from the reported seeds' test APs
    args = dict(det='gdino', shift='vocabulary', method='sdpt', shots=1,
                seed=7, iters=2, root=str(tmp_path), base='missing.pth',
                target_half_width=0.03, lr=0.05)
    narrow = []
    for i, ap in enumerate((0.50, 0.51, 0.50)):
        narrow.append(str(tmp_path / f'narrow{i}.json'))
        atomic_write_json(dict(AP=ap), narrow[-1])
    task = GridTask('x', str(tmp_path / 'x'), 'x:tune',
                    dict(args, widen_of=narrow))
    result = tune(task)
    assert result['lr'] is None and 'narrow enough' in result['skipped']
    assert not (tmp_path / 'x').exists()
    assert cached_run_holds(task, result)
    assert not cached_run_holds(task, _row(0.05, 0.5, seed=7))
    wide = []
    for i, ap in enumerate((0.2, 0.6, 0.4)):
        wide.append(str(tmp_path / f'wide{i}.json'))
        atomic_write_json(dict(AP=ap), wide[-1])
    task = GridTask('x', str(tmp_path / 'x'), 'x:tune',
                    dict(args, widen_of=wide))
    assert not cached_run_holds(task, result)
    assert cached_run_holds(task, _row(0.05, 0.5, seed=7))
    assert not cached_run_holds(
        GridTask('x', str(tmp_path / 'x'), 'x:tune',
                 dict(args, widen_of=wide + [str(tmp_path / 'none.json')])),
        _row(0.05, 0.5, seed=7))


def test_make_tasks_with_a_fixed_lr_selects_nothing(tmp_path):
    tasks = _tasks(tmp_path, fixed_lrs={'sdpt': 0.05})
    tuned = [t for t in tasks if t.args.get('method') == 'sdpt']
    assert len(tuned) == 2 * 3  # two shifts x three seeds, one lr
    for t in tuned:
        assert t.args['lr'] == 0.05 and 'candidates' not in t.args
        assert t.after == () and t.name.endswith('lr0.05')
        assert t.recheck is None


def test_runs_record_their_results_in_the_results_folder(tmp_path):
    """With a results folder apart from the work, every run records its
    result there, in the folder its work has under the work root, and the
    decisions drawn from other runs read those records."""
    results = tmp_path / 'results'
    tasks = _tasks(tmp_path, extra_seeds=(7, ), results_root=str(results),
                   methods=('zero_shot', 'sdpt', 'text'))
    assert len({t.result_file for t in tasks}) == len(tasks)
    for t in tasks:
        rel = osp.relpath(t.work_dir, tmp_path / 'runs')
        assert not rel.startswith('..')
        assert t.result_file == str(results / rel / 'metrics.json')
        for key in ('candidates', 'edge_of', 'widen_of'):
            assert all(f.startswith(str(results))
                       for f in t.args.get(key, []))
    assert any('widen_of' in t.args for t in tasks)


def test_lr_from_runs_each_cell_at_its_learning_rate_on_its_seeds(
        tmp_path):
    """A finished suite again (e.g. under other numerics): each cell at
    the learning rate its reported runs say it selected, on the seeds they
    ran (an extra seed included, a skipped one not, whatever --seeds and
    --extra-seeds say), no selection; a cell without reported runs is left
    out."""
    results = tmp_path / 'results'

    def record(shift, run, **row):
        atomic_write_json(dict(shots=1, **row), str(
            results / 'gdino' / shift / 'sdpt' / run / 'metrics.json'))

    for seed in (3, 30, 7):
        record('vocabulary', f'k1_seed{seed}_selected', lr=0.1, AP=0.5,
               seed=seed)
    record('vocabulary', 'k1_seed70_selected', lr=None, skipped='narrow')
    # the selection's trials and another cell's trials say nothing
    record('vocabulary', 'k1_select1_lr1', lr=1.0, AP=0.4, seed=1)
    record('appearance', 'k1_select1_lr1', lr=1.0, AP=0.4, seed=1)
    record('appearance', 'k1_select1_edge1', lr=None, skipped='inside')
    settings = selected_settings(str(results))
    assert settings == {('gdino', 'vocabulary', 'sdpt', 1): (0.1, (3, 7, 30))}
    base = tmp_path / 'base.pth'
    base.write_bytes(b'')
    plan = TransferPlan(
        detectors=['gdino'], shifts=['vocabulary', 'appearance'],
        methods=['zero_shot', 'sdpt'], root=str(tmp_path / 'corpus'),
        work_root=str(tmp_path / 'rerun'), bases={'gdino': str(base)},
        shots=[1], seeds=[3, 300], extra_seeds=[70],
        cell_settings=settings)
    assert not plan.selects()
    assert plan.seeds_needed() == [3, 7, 30]
    tuned = [t for t in make_tasks(plan) if t.args.get('method')]
    assert [(t.args['shift'], t.args['seed'], t.args['lr'])
            for t in tuned] == [('vocabulary', 3, 0.1), ('vocabulary', 7, 0.1),
                                ('vocabulary', 30, 0.1)]
    assert all(t.args.get('role', 'report') == 'report' for t in tuned)
    assert not any('widen_of' in t.args for t in tuned)
    # a cell reports one setting
    record('vocabulary', 'k1_seed300_selected', lr=1.0, AP=0.5, seed=300)
    with pytest.raises(ValueError, match='at learning rates'):
        selected_settings(str(results))


def test_finished_rows_leave_out_cells_with_runs_to_do(tmp_path):
    def task(name, result, **args):
        work = tmp_path / name
        if result is not None:
            atomic_write_json(result, str(work / 'metrics.json'))
        return GridTask(name, str(work), 'm:tune',
                        dict(det='gdino', shift='vocabulary', **args),
                        result_file=str(work / 'metrics.json'))

    a1 = dict(AP=0.5, iters=200, wall_s=100.0,
              platform=dict(cpu='AMD EPYC'))
    tasks = [
        task('zero', dict(AP=0.2, wall_s=15.0), shots=1),
        task('a1', a1, method='sdpt', shots=1),
        task('a2', dict(skipped='inside the grid', lr=None),
             method='sdpt', shots=1),
        task('b1', dict(AP=0.6, iters=200, wall_s=140.0), method='sdpt',
             shots=10),
        task('b2', None, method='sdpt', shots=10),
        task('c1', None, method='text', shots=1),
    ]
    report = finished_rows(tasks)
    assert report['rows'] == [dict(AP=0.2, wall_s=15.0), a1]
    assert (report['cells'], report['unfinished'],
            report['runs_left']) == (2, 2, 2)
    # the zero-shot evaluation and the decisions are not training runs
    assert report['run_s_per_detector'] == {
        'gdino': [('AMD EPYC', 100.0), ('not recorded', 140.0)]}
    assert report['runs_left_per_detector'] == {'gdino': 2}
    assert time_left(report, workers=2) == 120.0
    # this machine's runs where there are some
    assert time_left(report, workers=2, cpu='AMD EPYC') == 100.0
    assert time_left(report, workers=2, cpu='Intel Xeon') == 120.0
    assert time_left(dict(report, run_s_per_detector={}), 2) is None


def test_make_tasks_pretrains_a_missing_base_before_everything(tmp_path):
    tasks = _tasks(tmp_path, base_exists=False)
    pretrain = tasks[0]
    assert is_pretrain(pretrain) and not any(map(is_pretrain, tasks[1:]))
    assert pretrain.args['iters'] == 7
    assert pretrain.args['out'] == str(tmp_path / 'base.pth')
    assert pretrain.result_file == base_meta_file(str(tmp_path / 'base.pth'))
    by_name = {t.name: t for t in tasks}

    def needs(task):
        return set(task.after) | {n for a in task.after
                                  for n in needs(by_name[a])}

    for t in tasks[1:]:
        assert pretrain.name in needs(t), t.name
        assert t.args['base'] == pretrain.args['out']


def test_every_function_a_grid_task_names_resolves(tmp_path):
    """Workers call tasks by name: every name the transfer plan, the
    comparison grid and the base pretraining emit resolves to its
    function."""
    tasks = _tasks(tmp_path, base_exists=False)
    (tmp_path / 'fixed').mkdir()
    tasks += _tasks(tmp_path / 'fixed', fixed_lrs={'sdpt': 0.05})
    tasks += comparison.make_tasks(
        [zoo_config('zero_shot', 'gdino'), zoo_config('sdpt', 'gdino')], [0],
        str(tmp_path / 'compare'))
    tasks.append(bases.pretrain_task('glip', str(tmp_path), str(tmp_path),
                                     2, str(tmp_path / 'glip.pth')))
    names = {t.function for t in tasks} | {t.recheck for t in tasks
                                           if t.recheck}
    assert names == {ZERO_SHOT, TUNE, PRETRAIN, RECHECK, function_name(
        comparison.train_and_evaluate)}
    for name in names:
        function = resolve_function(name)
        assert callable(function) and function_name(function) == name


# ---- pretraining ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('det', ['glip', 'gdino'])
def test_pretraining_is_deterministic_and_writes_an_fp16_base(det, corpus,
                                                              tmp_path):
    register_all_modules()
    threads = torch.get_num_threads()
    metas, files = [], []
    try:
        for run in ('a', 'b'):
            out = str(tmp_path / run / f'{det}_base.pth')
            task = bases.pretrain_task(det, str(corpus),
                                       str(tmp_path / run), 4, out)
            run_task(task)  # writes the result (the base's json) as the tool
            metas.append(bases.base_info(out))
            files.append(out)
    finally:
        torch.set_num_threads(threads)
    assert filecmp.cmp(*files, shallow=False)
    a, b = metas
    assert a['sha256'] == b['sha256'] == bases.file_sha256(files[0])
    assert a['iters'] == 4 and a['threads'] == bases.PRETRAIN_THREADS
    # validated every iteration (4 iterations < 8 points); the plateau is
    # the gain over the last quarter
    curve = a['val_curve']
    assert [p['iter'] for p in curve] == [1, 2, 3, 4]
    assert a['plateau'] == round(curve[-1]['AP'] - curve[-2]['AP'], 3)
    assert curve == b['val_curve'] and 'AP' in a['source_val']
    saved = torch.load(files[0], map_location='cpu')['state_dict']
    floats = [v for v in saved.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    # the detector's own weights, ready for load_from
    assert not any(k.startswith(('prompt_tuning.', 'detector.'))
                   for k in saved)
    fusion = {'gdino': 'encoder.fusion_layers.',
              'glip': 'bbox_head.head.dyhead_tower.0.b_attn.'}[det]
    assert any(k.startswith(fusion) for k in saved)


# ---- the tool ---------------------------------------------------------------
@pytest.mark.slow
def test_tool_pretrains_tunes_diagnoses_reports_and_skips(tmp_path):
    """The whole suite at two iterations on Grounding DINO (the faster tiny
    detector), one shift, SDPT with two learning rates tried on one
    selection seed and one reported seed. The runs train in one folder and
    record their results in another (a results folder to commit)."""
    root, work = tmp_path / 'synthetic', tmp_path / 'work'
    runs = tmp_path / 'results'
    # A small corpus first (the tool keeps finished splits): evaluations of
    # a handful of images keep the test fast.
    make_synthetic_corpus(str(root), counts=COUNTS, size=SIZE,
                          shifts=('vocabulary', ))
    tool = osp.join(REPO_ROOT, 'tools', 'transfer_benchmark.py')
    args = [sys.executable, tool, '--detectors', 'gdino', '--shifts',
            'vocabulary', '--methods', 'zero_shot', 'sdpt', '--shots', '1',
            '--selection-seeds', '3', '--seeds', '30', '--extra-seeds',
            '--lr-factors', '0.1', '1', '--iters', '2',
            # with two learning rates the best is always at an end: one run
            # past it
            '--lr-edge-steps', '1',
            '--pretrain', '--pretrain-iters', 'gdino=2', '--workers', '1',
            '--root', str(root), '--work-dir', str(work),
            '--results-dir', str(runs)]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600,
                          env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '1 base(s) to pretrain, 6 tasks (0 finished)' in proc.stdout
    # the small corpus was kept
    assert len(_coco(root / 'shifts' / 'vocabulary', 'test')['images']) == \
        COUNTS['shift']['test']
    base = work / 'bases' / 'gdino_tiny_synthetic_base.pth'
    meta = json.loads(base.with_suffix('.json').read_text())
    assert meta['iters'] == 2 and meta['sha256'] == file_sha256(str(base))
    assert len(meta['val_curve']) == 2

    with open(runs / 'transfer.csv') as f:
        rows = list(csv.DictReader(f))
    recipe = recipe_lr('gdino', 'sdpt')
    assert recipe == 1e-2  # the run folders below are named after it
    keys = [(r['key'], r['seed']) for r in rows]
    assert sorted(keys) == [('sdpt', '3')] * 3 + [('sdpt', '30'),
                                                  ('zero_shot', '')]
    zero, *tuned = rows
    assert zero['trainable'] == '0' and zero['oracle_AP'] != ''
    grid = [r for r in tuned if r['edge'] == 'False' and r['seed'] == '3']
    assert sorted(float(r['lr']) for r in grid) == [1e-3, 1e-2]
    folder = runs / 'gdino' / 'vocabulary' / 'sdpt'
    metrics = {p.parent: json.loads(p.read_text())
               for p in folder.glob('*/metrics.json')}
    assert sorted(p.name for p in metrics) == [
        'k1_seed30_selected', 'k1_select3_edge1', 'k1_select3_lr0.001',
        'k1_select3_lr0.01']
    # the results folder holds only the records; the work stays apart
    assert sorted(p.name for p in runs.rglob('*') if p.is_file()
                  and p.name != 'metrics.json') == sorted([
        'ap_vs_trainable_vocabulary.png', 'comparisons.json',
        'protocol.json', 'transfer.csv', 'transfer.md'])
    work_folder = work / 'gdino' / 'vocabulary' / 'sdpt'
    for p in metrics:
        assert list((work_folder / p.name).glob('iter_*.pth'))
        assert not (work_folder / p.name / 'metrics.json').exists()
        # each run (one worker ran them all, after the pretraining) logs
        # its scalars in its own folder; training never validates: dev is
        # evaluated once, by the run
        [scalars] = (work_folder / p.name).glob('*/vis_data/scalars.json')
        logged = [json.loads(line) for line in
                  scalars.read_text().splitlines()]
        assert logged and not any('coco/bbox_mAP' in x for x in logged)
    logs = list(work.rglob('vis_data/*.json'))
    assert len(logs) == 2 * (len(metrics) + 1)  # the runs and the base's
    assert all(p.name == 'scalars.json' or p.stem == p.parents[1].name
               for p in logs)
    first = [m for m in metrics.values() if m['seed'] == 3]
    assert all(m['role'] == 'selection' for m in first)
    # the run past the grid's end went past the end the best dev AP sat at
    grid_best = select_lr([m for m in first if not m['edge']], recipe)
    edge = metrics[folder / 'k1_select3_edge1']
    assert edge['edge'] and edge['lr'] == (0.1 if grid_best == 1e-2
                                           else 1e-4)
    chosen = select_lr(first, recipe)
    for m in metrics.values():
        assert 0.0 <= m['dev_AP'] <= 1.0
        assert m['trainable'] == 32768  # 16 tokens x 1024 x 2 layers
        assert m['grad_norm_first_step'] > 0 and m['iters'] == 2
        assert m['recipe_lr'] == recipe and m['weight_decay'] == 0.01
        if m['role'] == 'selection':
            # a learning-rate run is judged on dev: its test split is
            # never evaluated
            assert 'AP' not in m and 'source_AP' not in m
            continue
        assert m['seed'] == 30  # the selected lr, chosen on dev
        assert m['selected'] and m['lr'] == chosen
        for key in ('AP', 'source_AP', 'no_fusion_AP'):
            assert 0.0 <= m[key] <= 1.0, key
        assert m['feature_change_image'] > 0 and m['feature_change_text'] > 0
        # SDPT switched off is the base, exactly, on every test batch
        assert m['prompts_off_max_diff'] == 0.0
        assert m['prompts_off_batches'] >= 1 and m['prompts_off_failed'] == 0
    # only the reported seed is in the table
    selected = {(r['seed'], float(r['lr'])) for r in tuned
                if r['selected'] == 'True'}
    assert selected == {('30', chosen)}
    zero_metrics = json.loads(
        (runs / 'gdino' / 'vocabulary' / 'zero_shot' / 'metrics.json')
        .read_text())
    assert zero_metrics['oracle_AP'] is not None
    assert zero_metrics['prompts_off_max_diff'] == 0.0

    table = (runs / 'transfer.md').read_text()
    assert '**vocabulary** (new names for seen objects)' in table
    assert '| zero-shot | 0 |' in table
    assert '| SDPT | 32,768 |' in table and f'| {chosen:.0e} |' in table
    assert 'Text-side oracle (the base with the names it learnt' in table
    assert 'Method switched off: 1 of 1 reported runs that can switch off ' \
        'predict exactly as the base on every test batch' in table
    assert '| k=1 | zero-shot | 1 |' in table  # SDPT against zero-shot
    assert 'Learning rates: 1 of 1 cells went past the end' in table
    assert (runs / 'ap_vs_trainable_vocabulary.png').stat().st_size > 0

    # Again: the base and every run are read back, nothing is retrained.
    csv_text = (runs / 'transfer.csv').read_text()
    mtimes = [osp.getmtime(p) for p in [base] + [
        f / 'metrics.json' for f in metrics]]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the base exists now: no pretraining task at all
    assert '0 base(s) to pretrain, 5 tasks (5 finished)' in proc.stdout
    assert proc.stdout.count('[cached]') == 5
    assert [osp.getmtime(p) for p in [base] + [
        f / 'metrics.json' for f in metrics]] == mtimes
    assert (runs / 'transfer.csv').read_text() == csv_text

    # A report while another method is still to run: its cell is left out
    # whole and nothing trains.
    report_only = args[:args.index('sdpt') + 1] + ['text'] + \
        args[args.index('sdpt') + 1:] + ['--report-only']
    proc = subprocess.run(report_only, capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '2 cells reported (5 runs), 1 left out with 4 runs to do (at ' \
        'most ~' in proc.stdout
    assert not (work / 'gdino' / 'vocabulary' / 'text').exists()
    assert not (runs / 'gdino' / 'vocabulary' / 'text').exists()
    assert (runs / 'transfer.csv').read_text() == csv_text

    # The finished cell again under perturbed numerics, at the learning
    # rate it selected, on the seed it reported (not the protocol's
    # default ones); the cell that never ran is left out.
    rerun = tmp_path / 'rerun'
    proc = subprocess.run(
        [sys.executable, tool, '--lr-from', str(runs), '--detectors',
         'gdino', '--shifts', 'vocabulary', '--methods', 'sdpt', 'text',
         '--shots', '1', '--iters', '2',
         '--numerics', 'aten-default', '--pretrain', '--workers', '1',
         '--root', str(root), '--work-dir', str(work), '--results-dir',
         str(rerun)], capture_output=True, text=True, timeout=300, env=env,
        cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '1 of 2 cells have a selected learning rate; left out: gdino ' \
        'vocabulary text 1' in proc.stdout
    [again] = [json.loads(p.read_text()) for p in rerun.rglob('metrics.json')]
    assert again['lr'] == chosen and again['seed'] == 30
    assert again['numerics'] == 'aten-default' and again['role'] == 'report'
    assert json.loads((rerun / 'protocol.json').read_text())[
        'numerics'] == 'aten-default'


def test_configs_are_read_once_and_handed_out_as_copies():
    path = transfer_config('gdino')
    first = read_config(path)
    first.model.prompt = 'changed by a run'
    again = read_config(path)
    assert again.to_dict() == Config.fromfile(path).to_dict()
    assert again.filename == path and again.text == first.text
