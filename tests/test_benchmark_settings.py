"""Benchmark settings (projects/sdpt/datasets/benchmark_settings.py) and the
configs built on them: ODinW13 (13 datasets x GLIP / Grounding DINO) checked
against mmdet's own odinw configs, LVIS (>256-token class lists: chunked
prompts at test time, class subsets in training), COCO and custom data."""
import copy
import os.path as osp

import mmdet
import pytest
from helpers import REPO_ROOT, run, write_coco
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from mmengine.config import Config

from projects.sdpt.cli import default_work_dir
from projects.sdpt.datasets.benchmark_settings import (
    ODINW13,
    PROTOCOL_SEEDS,
    PROTOCOL_SHOTS,
    apply_benchmark,
    few_shot_name,
)
from projects.sdpt.engine.config import load_config

MMDET_CONFIGS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
ODINW_CONFIGS = {
    'glip': ('configs/odinw/sdpt_glip_odinw13.py',
             'glip/odinw/glip_atss_swin-t_a_fpn_dyhead_pretrain_odinw13.py'),
    'gdino': ('configs/odinw/sdpt_gdino_odinw13.py',
              'grounding_dino/odinw/'
              'grounding_dino_swin-t_pretrain_odinw13.py'),
}


def resolve(raw, **options):
    cfg = copy.deepcopy(raw)
    cfg.merge_from_dict(options)
    return apply_benchmark(cfg)


@pytest.fixture(scope='module', params=sorted(ODINW_CONFIGS))
def odinw(request):
    ours, theirs = ODINW_CONFIGS[request.param]
    raw = Config.fromfile(osp.join(REPO_ROOT, ours))
    mm = Config.fromfile(osp.join(MMDET_CONFIGS, theirs))
    mmdet = {prefix: (ds, ev) for prefix, ds, ev in zip(
        mm.dataset_prefixes, mm.datasets, mm.metrics)}
    return request.param, raw, mmdet


def test_odinw13_every_dataset_matches_mmdet(odinw):
    name, raw, mmdet = odinw
    assert sorted(mmdet) == sorted(ODINW13)  # the same 13 datasets
    for i, dataset in enumerate(ODINW13):
        shots = PROTOCOL_SHOTS[i % 4]
        seed = PROTOCOL_SEEDS[i % 3]
        cfg = resolve(raw, dataset=dataset, shots=shots, seed=seed)
        ref_ds, ref_ev = mmdet[dataset]
        classes = tuple(ref_ds['metainfo']['classes'])
        # training: the k-shot split of the dataset's train file
        train = cfg.train_dataloader.dataset
        assert train.type == 'CocoDataset'
        assert train.data_root == ref_ds['data_root']
        assert tuple(train.metainfo.classes) == classes
        assert train.ann_file == few_shot_name(
            ODINW13[dataset]['train_ann'], shots, seed)
        assert train.ann_file.endswith(f'_{shots}shot_seed{seed}.json')
        assert train.pipeline == raw.train_dataloader.dataset.pipeline
        assert train.return_classes
        # evaluation: exactly mmdet's files, classes and prompts (None)
        for key in ('val_dataloader', 'test_dataloader'):
            ds = cfg[key].dataset
            for field in ('type', 'data_root', 'ann_file', 'data_prefix',
                          'test_mode', 'return_classes'):
                assert ds[field] == ref_ds[field], (dataset, field)
            assert tuple(ds.metainfo.classes) == classes
            assert ds.get('caption_prompt') == ref_ds.get('caption_prompt')
            assert 'caption_prompt' in ds.pipeline[-1]['meta_keys']
        for key in ('val_evaluator', 'test_evaluator'):
            assert cfg[key].ann_file == ref_ev['ann_file']
            assert cfg[key].type == 'CocoMetric' and cfg[key].classwise
        assert cfg.model == raw.model  # only the data changes
        assert cfg.setting.name == f'{dataset}/{shots}shot_seed{seed}'
        assert cfg.randomness == dict(seed=seed)
        # the prompt overrides (commented out in mmdet's odinw13 configs)
        on = resolve(raw, dataset=dataset, caption_prompts=True)
        prompt = on.test_dataloader.dataset.get('caption_prompt')
        assert prompt == ODINW13[dataset]['caption_prompt']
        assert set(prompt or {}) <= set(classes)
        for override in (prompt or {}).values():
            assert set(override) <= {'prefix', 'name', 'suffix'}
        assert 'caption_prompt' not in on.train_dataloader.dataset


def test_odinw_prompt_overrides_match_mmdet_odinw35():
    """Where mmdet turns the overrides on (odinw35), they are ours."""
    mm = Config.fromfile(osp.join(
        MMDET_CONFIGS,
        'glip/odinw/glip_atss_swin-t_a_fpn_dyhead_pretrain_odinw35.py'))
    by_root = {info['root']: name for name, info in ODINW13.items()}
    matched = set()
    for ds in mm.datasets:
        root = ds['data_root'][len('data/odinw/'):]
        if ds.get('caption_prompt') and root in by_root:
            assert ds['caption_prompt'] == \
                ODINW13[by_root[root]]['caption_prompt']
            matched.add(by_root[root])
    assert matched == {'EgoHands', 'Packages', 'pothole'}


@pytest.mark.slow
def test_odinw_through_the_tools(tmp_path):
    path = osp.join(REPO_ROOT, 'configs/odinw/sdpt_glip_odinw13.py')
    cfg = load_config(path, dict(dataset='Raccoon', shots=10, seed=300))
    assert cfg.train_dataloader.dataset.ann_file == \
        'train/annotations_without_background_10shot_seed300.json'
    assert default_work_dir(path, cfg) == \
        './work_dirs/sdpt_glip_odinw13/Raccoon/10shot_seed300'
    with pytest.raises(SystemExit, match='Aquarium'):
        load_config(path, dict(dataset='Aquarium2'))
    with pytest.raises(SystemExit, match='shots'):
        load_config(path, dict(shots=-1))
    # the resolved config written to a file loads on its own
    out = tmp_path / 'cfg.py'
    run('make_config.py', path, '--cfg-options', 'dataset=pistols',
        'shots=3', 'seed=30', '--out', out, timeout=120)  # exits 0
    dumped = Config.fromfile(str(out))
    assert 'benchmark' not in dumped
    assert dumped.train_dataloader.dataset.ann_file == \
        'train_annotations_without_background_3shot_seed30.json'
    assert dumped.test_dataloader.dataset.data_root == \
        'data/odinw/pistols/export/'


def _build(ds_cfg):
    register_all_modules()
    ds_cfg = copy.deepcopy(ds_cfg)
    ds_cfg.pipeline = []
    ds_cfg.pop('filter_cfg', None)
    return DATASETS.build(ds_cfg)


@pytest.mark.parametrize('dataset', ['Aquarium', 'pistols'])
def test_odinw_layout_loads(dataset, tmp_path):
    """Files laid out as ODINW13 says load as mmdet datasets."""
    info = ODINW13[dataset]
    root = tmp_path / 'odinw'
    base = root / info['root']
    write_coco(base / few_shot_name(info['train_ann'], 1, 3),
                base / info['train_img'], info['classes'])
    write_coco(base / info['val_ann'], base / info['val_img'],
                info['classes'])
    raw = Config.fromfile(osp.join(REPO_ROOT,
                                   'configs/odinw/sdpt_gdino_odinw13.py'))
    cfg = resolve(raw, dataset=dataset, data_root=str(root) + '/')
    for key in ('train_dataloader', 'test_dataloader'):
        ds = _build(cfg[key].dataset)
        assert len(ds) == 3
        item = ds.get_data_info(0)
        assert osp.isfile(item['img_path'])
        assert tuple(item['text']) == info['classes']
        assert len(item['instances']) == len(info['classes'])
    assert osp.isfile(cfg.test_evaluator.ann_file)


def test_coco_configs_follow_shots_and_seed():
    path = osp.join(REPO_ROOT, 'configs/sdpt_gdino_coco_1shot.py')
    cfg = load_config(path)
    assert cfg.train_dataloader.dataset.ann_file == \
        'annotations/instances_train2017_1shot_seed3.json'
    cfg = load_config(path, dict(shots=5, seed=30))
    assert cfg.train_dataloader.dataset.ann_file == \
        'annotations/instances_train2017_5shot_seed30.json'
    assert cfg.train_dataloader.dataset.data_prefix == dict(img='train2017/')
    assert cfg.test_dataloader.dataset.ann_file == \
        'annotations/instances_val2017.json'
    assert default_work_dir(path, cfg) == \
        './work_dirs/sdpt_gdino_coco_1shot/5shot_seed30'


# ---- custom data ---------------------------------------------------------

CUSTOM = {'glip': 'configs/custom/sdpt_glip_custom.py',
          'gdino': 'configs/custom/sdpt_gdino_custom.py'}


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(CUSTOM))
def test_custom_config(name, tmp_path):
    classes = ('widget', 'gadget')
    write_coco(tmp_path / 'ann' / 'train.json', tmp_path / 'imgs', classes,
                n_images=4)
    write_coco(tmp_path / 'ann' / 'val.json', tmp_path / 'imgs', classes,
                n_images=2)
    options = dict(data_root=str(tmp_path) + '/', train_ann='ann/train.json',
                   val_ann='ann/val.json', train_img='imgs/',
                   val_img='imgs/', classes=list(classes))
    path = osp.join(REPO_ROOT, CUSTOM[name])
    cfg = load_config(path, options)  # shots=None: the whole file
    assert cfg.setting.name == 'full'
    assert len(_build(cfg.train_dataloader.dataset)) == 4
    val = _build(cfg.val_dataloader.dataset)
    assert len(val) == 2 and val.metainfo['classes'] == classes
    assert cfg.val_evaluator.ann_file == str(tmp_path / 'ann' / 'val.json')
    assert cfg.val_evaluator.classwise
    assert {'type': 'EvalReportHook'} in cfg.custom_hooks
    # a k-shot split under the protocol's name
    run('make_few_shot.py', tmp_path / 'ann' / 'train.json', '--protocol',
        '--shots-list', '1', '--seeds', '30', timeout=60)  # exits 0
    cfg = load_config(path, dict(options, shots=1, seed=30))
    train = _build(cfg.train_dataloader.dataset)
    assert cfg.train_dataloader.dataset.ann_file == \
        'ann/train_1shot_seed30.json'
    assert sum(len(train.get_data_info(i)['instances'])
               for i in range(len(train))) == 2  # 1 per class
    with pytest.raises(SystemExit, match='classes'):
        load_config(path, dict(options, classes='widget'))


# ---- LVIS: class lists longer than the text encoder's 256 tokens ---------

LVIS = {'glip': 'configs/lvis/sdpt_glip_lvis_minival.py',
        'gdino': 'configs/lvis/sdpt_gdino_lvis_minival.py'}


@pytest.mark.parametrize('name', sorted(LVIS))
def test_lvis_config(name):
    path = osp.join(REPO_ROOT, LVIS[name])
    cfg = load_config(path, dict(shots=10, seed=300))
    det = cfg.model.detector
    assert det.test_cfg.chunked_size == 40
    assert det.test_cfg.max_per_img == 300
    assert cfg.test_dataloader.batch_size == 1
    for key in ('train_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.type == 'LVISV1Dataset'
        assert cfg[key].dataset.data_prefix == dict(img='')
    assert cfg.train_dataloader.dataset.ann_file == \
        'annotations/lvis_v1_train_10shot_seed300.json'
    assert cfg.test_dataloader.dataset.ann_file == \
        'annotations/lvis_v1_minival_inserted_image_name.json'
    assert cfg.test_evaluator.type == 'LVISFixedAPMetric'
    assert cfg.test_evaluator.ann_file == \
        'data/coco/annotations/lvis_v1_minival_inserted_image_name.json'
    subset = [t for t in cfg.train_dataloader.dataset.pipeline
              if t['type'] == 'ClassSubsetPrompt']
    assert len(subset) == 1
    assert subset[0]['tokenizer'] == det.language_model.name
    assert cfg.setting.name == 'lvis_minival/10shot_seed300'
    cfg = load_config(path, dict(lvis_split='val'))
    assert cfg.test_evaluator.ann_file == \
        'data/coco/annotations/lvis_v1_val.json'
