"""Benchmark settings: one config per detector, resolved per setting.

A benchmark config (``configs/odinw/``, ``configs/lvis/``, ``configs/custom/``)
declares its setting with a few top-level keys::

    benchmark = 'odinw13'            # or 'lvis', 'custom', 'coco'
    dataset = 'AerialMaritimeDrone'  # odinw13 only: one of ODINW13
    shots, seed = 1, 3               # k-shot split of the training set
    data_root = 'data/odinw/'

``apply_benchmark(cfg)`` (called by ``tools/train.py`` and ``tools/test.py``
after ``--cfg-options`` are merged, so ``--cfg-options dataset=Aquarium
shots=3 seed=30`` works) fills in the data fields of the train / val / test
dataloaders and evaluators from these keys, and records ``cfg.setting``.
Everything else (pipelines, batch sizes, samplers, recipe) stays as the
config has it. ``tools/make_config.py`` writes a resolved config to a file
for tools that do not resolve (e.g. mmdet's own).

Few-shot training files follow one naming scheme, shared with
``tools/make_few_shot.py --protocol``: ``<stem>_<k>shot_seed<seed>.json``
next to the full training file (``few_shot_name``).
"""
import copy
import os.path as osp

# The few-shot protocol (GLIP / SDPT): k shots per class, three seeds.
PROTOCOL_SHOTS = (1, 3, 5, 10)
PROTOCOL_SEEDS = (3, 30, 300)

# ODinW13 as mmdet 3.3's own configs define it
# (configs/{glip,grounding_dino}/odinw/*_odinw13.py): directory under the
# ODinW root, class names, validation file and image prefix. The training
# files are the same exports' ``train`` split (GLIP's ODinW layout; pistols
# keeps its files at the export root). ``caption_prompt`` holds the prompt
# overrides written in mmdet's odinw13 configs, where they are commented out
# (mmdet evaluates ODinW13 with ``caption_prompt=None``; its odinw35 config
# turns on those of EgoHands, Packages and pothole). They are applied only
# with ``caption_prompts = True`` in the config, and at test time only:
# mmdet's GLIP / Grounding DINO ``loss`` ignores caption prompts.
_VALID = 'valid/annotations_without_background.json'
_TRAIN = 'train/annotations_without_background.json'


def _ds(root, classes, caption_prompt=None, val_ann=_VALID, val_img='valid/',
        train_ann=_TRAIN, train_img='train/'):
    return dict(root=root, classes=tuple(classes),
                caption_prompt=caption_prompt, val_ann=val_ann,
                val_img=val_img, train_ann=train_ann, train_img=train_img)


ODINW13 = {
    'AerialMaritimeDrone': _ds(
        'AerialMaritimeDrone/large/',
        ('boat', 'car', 'dock', 'jetski', 'lift')),
    'Aquarium': _ds(
        'Aquarium/Aquarium Combined.v2-raw-1024.coco/',
        ('fish', 'jellyfish', 'penguin', 'puffin', 'shark', 'starfish',
         'stingray'),
        caption_prompt={
            'penguin': {'suffix': ', which is black and white'},
            'puffin': {'suffix': ' with orange beaks'},
            'stingray': {'suffix': ' which is flat and round'},
        }),
    'CottontailRabbits': _ds(
        'CottontailRabbits/', ('Cottontail-Rabbit', ),
        caption_prompt={'Cottontail-Rabbit': {'name': 'rabbit'}}),
    'EgoHands': _ds(
        'EgoHands/generic/', ('hand', ),
        caption_prompt={'hand': {'suffix': ' of a person'}}),
    'NorthAmericaMushrooms': _ds(
        'NorthAmericaMushrooms/North American Mushrooms.v1-416x416.coco/',
        ('CoW', 'chanterelle'),
        caption_prompt={'CoW': {'name': 'flat mushroom'},
                        'chanterelle': {'name': 'yellow mushroom'}}),
    'Packages': _ds(
        'Packages/Raw/', ('package', ),
        caption_prompt={'package': {'prefix': 'there is a ',
                                    'suffix': ' on the porch'}}),
    'PascalVOC': _ds(
        'PascalVOC/',
        ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
         'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
         'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')),
    'pistols': _ds(
        'pistols/export/', ('pistol', ),
        val_ann='val_annotations_without_background.json', val_img='',
        train_ann='train_annotations_without_background.json', train_img=''),
    'pothole': _ds(
        'pothole/', ('pothole', ),
        caption_prompt={'pothole': {'prefix': 'there are some ',
                                    'name': 'holes',
                                    'suffix': ' on the road'}}),
    'Raccoon': _ds('Raccoon/Raccoon.v2-raw.coco/', ('raccoon', )),
    'ShellfishOpenImages': _ds('ShellfishOpenImages/raw/',
                               ('Crab', 'Lobster', 'Shrimp')),
    'thermalDogsAndPeople': _ds('thermalDogsAndPeople/', ('dog', 'person')),
    'VehiclesOpenImages': _ds(
        'VehiclesOpenImages/416x416/',
        ('Ambulance', 'Bus', 'Car', 'Motorcycle', 'Truck')),
}

# LVIS v1 as mmdet's GLIP / Grounding DINO LVIS configs read it (COCO
# images, ``data_prefix=dict(img='')``: LVISV1Dataset takes the path from
# each image's coco_url).
LVIS = dict(
    train_ann='annotations/lvis_v1_train.json',
    val_ann={'minival': 'annotations/lvis_v1_minival_inserted_image_name.json',
             'val': 'annotations/lvis_v1_val.json'})

COCO = dict(train_ann='annotations/instances_train2017.json',
            train_img='train2017/',
            val_ann='annotations/instances_val2017.json', val_img='val2017/')


class BenchmarkError(ValueError):
    """A benchmark setting that cannot be resolved (message says why)."""


def few_shot_name(ann_file, shots, seed):
    """``dir/stem.json`` -> ``dir/stem_<k>shot_seed<seed>.json``."""
    stem, ext = osp.splitext(ann_file)
    return f'{stem}_{shots}shot_seed{seed}{ext or ".json"}'


def setting_name(setting):
    """Directory name of a run: ``[dataset/]<k>shot_seed<seed>`` or full."""
    parts = [setting['dataset']] if setting.get('dataset') else []
    if setting.get('shots'):
        parts.append(f'{setting["shots"]}shot_seed{setting["seed"]}')
    else:
        parts.append('full')
    return '/'.join(parts)


def _check_shots(cfg):
    shots, seed = cfg.get('shots'), cfg.get('seed')
    if shots in (None, 0, 'full'):
        return None, seed
    if not isinstance(shots, int) or shots < 1:
        raise BenchmarkError(f'shots must be a positive integer or None '
                             f'(full training set), got {shots!r}')
    if not isinstance(seed, int):
        raise BenchmarkError(f'seed must be an integer, got {seed!r}')
    return shots, seed


def _set_dataset(loader, **fields):
    ds = loader['dataset']
    for key, value in fields.items():
        if value is None and key == 'caption_prompt':
            ds.pop(key, None)
        else:
            ds[key] = copy.deepcopy(value)


def _set_evaluators(cfg, ann_file):
    for key in ('val_evaluator', 'test_evaluator'):
        ev = cfg.get(key)
        if isinstance(ev, dict) and 'ann_file' in ev:
            ev['ann_file'] = ann_file


def _odinw13(cfg, shots, seed):
    name = cfg.get('dataset')
    if name not in ODINW13:
        raise BenchmarkError(
            f'Unknown ODinW13 dataset {name!r}; choose one of: '
            + ', '.join(ODINW13) + ' (--cfg-options dataset=NAME)')
    info = ODINW13[name]
    root = osp.join(cfg.get('data_root', 'data/odinw/'), info['root'])
    train_ann = info['train_ann']
    if shots:
        train_ann = few_shot_name(train_ann, shots, seed)
    meta = dict(classes=info['classes'])
    prompt = info['caption_prompt'] if cfg.get('caption_prompts') else None
    _set_dataset(cfg.train_dataloader, type='CocoDataset', data_root=root,
                 ann_file=train_ann, data_prefix=dict(img=info['train_img']),
                 metainfo=meta, return_classes=True)
    for key in ('val_dataloader', 'test_dataloader'):
        _set_dataset(cfg[key], type='CocoDataset', data_root=root,
                     ann_file=info['val_ann'],
                     data_prefix=dict(img=info['val_img']), metainfo=meta,
                     caption_prompt=prompt, test_mode=True,
                     return_classes=True)
    _set_evaluators(cfg, osp.join(root, info['val_ann']))
    return dict(dataset=name, data_root=root,
                train_ann=osp.join(root, train_ann),
                val_ann=osp.join(root, info['val_ann']),
                classes=list(info['classes']), caption_prompt=prompt)


def _coco_like(cfg, shots, seed, defaults, dataset_type, meta=None):
    root = cfg.get('data_root')
    train_ann = cfg.get('train_ann', defaults.get('train_ann'))
    val_ann = cfg.get('val_ann', defaults.get('val_ann'))
    if not (root is not None and train_ann and val_ann):
        raise BenchmarkError('the config needs data_root, train_ann and '
                             'val_ann')
    if shots:
        train_ann = few_shot_name(train_ann, shots, seed)
    train_img = cfg.get('train_img', defaults.get('train_img', ''))
    val_img = cfg.get('val_img', defaults.get('val_img', ''))
    extra = dict(metainfo=meta) if meta else {}
    _set_dataset(cfg.train_dataloader, type=dataset_type, data_root=root,
                 ann_file=train_ann, data_prefix=dict(img=train_img),
                 return_classes=True, **extra)
    for key in ('val_dataloader', 'test_dataloader'):
        _set_dataset(cfg[key], type=dataset_type, data_root=root,
                     ann_file=val_ann, data_prefix=dict(img=val_img),
                     test_mode=True, return_classes=True, **extra)
    _set_evaluators(cfg, osp.join(root, val_ann))
    return dict(data_root=root, train_ann=osp.join(root, train_ann),
                val_ann=osp.join(root, val_ann),
                classes=list(meta['classes']) if meta else None)


def _custom(cfg, shots, seed):
    classes = cfg.get('classes')
    if not classes or isinstance(classes, str):
        raise BenchmarkError(
            'a custom config needs classes = (name, ...) in the order of the '
            "annotation file's category ids")
    return _coco_like(cfg, shots, seed, {}, 'CocoDataset',
                      dict(classes=tuple(classes)))


def _lvis(cfg, shots, seed):
    split = cfg.get('lvis_split', 'minival')
    if split not in LVIS['val_ann']:
        raise BenchmarkError(f'lvis_split must be one of '
                             f'{sorted(LVIS["val_ann"])}, got {split!r}')
    defaults = dict(train_ann=LVIS['train_ann'],
                    val_ann=LVIS['val_ann'][split])
    setting = _coco_like(cfg, shots, seed, defaults, 'LVISV1Dataset')
    setting['dataset'] = f'lvis_{split}'
    return setting


def _coco(cfg, shots, seed):
    return _coco_like(cfg, shots, seed, COCO, 'CocoDataset')


RESOLVERS = dict(odinw13=_odinw13, lvis=_lvis, custom=_custom, coco=_coco)


def apply_benchmark(cfg):
    """Resolve a benchmark config in place (no-op without ``benchmark``).

    Returns ``cfg``; ``cfg.setting`` records what was chosen (benchmark,
    dataset, shots, seed, files, classes) and ``cfg.setting.name`` the run's
    directory name under the config's work dir.
    """
    bench = cfg.get('benchmark')
    if bench is None:
        return cfg
    if bench not in RESOLVERS:
        raise BenchmarkError(f'Unknown benchmark {bench!r}; one of '
                             + ', '.join(RESOLVERS))
    shots, seed = _check_shots(cfg)
    setting = dict(benchmark=bench, shots=shots,
                   seed=seed if shots else None)
    setting.update(RESOLVERS[bench](cfg, shots, seed))
    setting.setdefault('dataset', None)
    setting['name'] = setting_name(setting)
    cfg.setting = setting
    # The split's seed also seeds training, unless the config chose.
    if shots and cfg.get('randomness') is None:
        cfg.randomness = dict(seed=seed)
    return cfg
