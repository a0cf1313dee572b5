"""Loading a config the project's way: mmengine's ``Config`` with
``--cfg-options``, the benchmark settings filled in and the base weights
remembered."""
import os.path as osp
from typing import Tuple

from mmdet.registry import DATASETS
from mmengine.config import Config

from ..datasets.benchmark_settings import BenchmarkError, apply_benchmark


def load_config(path, cfg_options=None):
    """The config at ``path`` with ``cfg_options`` merged, class names as
    tuples (:func:`classes_as_tuples`), its benchmark
    setting applied (``datasets/benchmark_settings.py``) and ``base_weights``
    defaulting to ``load_from``; ``SystemExit`` naming the file when it is
    missing or its setting is wrong."""
    if not osp.isfile(path):
        raise SystemExit(f'Config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for key in list(cfg.keys()):
        classes_as_tuples(cfg[key])
    # Benchmark configs (configs/odinw, lvis, custom): fill in the data of
    # the chosen dataset / shots / seed (datasets/benchmark_settings.py).
    try:
        apply_benchmark(cfg)
    except BenchmarkError as e:
        raise SystemExit(f'{path}: {e}')
    # Remember the detector weights before --resume / --checkpoint replace
    # load_from: prompt checkpoints are completed with them on load.
    if cfg.get('base_weights') is None and cfg.get('load_from'):
        cfg.base_weights = cfg.load_from
    try:
        fill_prompt_classes(cfg)
    except ValueError as e:
        raise SystemExit(f'{path}: {e}')
    return cfg


def without_yapf(cfg: Config) -> Config:
    """``cfg`` whose ``pretty_text`` is not formatted with yapf (the same
    valid Python, long lines). A Runner formats its config five times (the
    log, the dumped file, the message hub, each checkpoint's meta), about
    1 s each for the tiny transfer configs: worth it only for many short
    runs. ``Config.fromfile`` takes ``format_python_code`` but drops it for
    a plain (not lazy-import) config file."""
    return Config(cfg.to_dict(), cfg_text=cfg.text, filename=cfg.filename,
                  env_variables=cfg.env_variables, format_python_code=False)


def fill_prompt_classes(cfg) -> None:
    """``model.prompt.classes = None`` (methods with vectors per class):
    the training set's class names, in label order, in place."""
    prompt = cfg.get('model', {}).get('prompt')
    if not isinstance(prompt, dict) or 'classes' not in prompt or \
            prompt['classes'] is not None:
        return
    dataset = cfg.get('train_dataloader', {}).get('dataset')
    if dataset is None:
        raise ValueError(
            'model.prompt.classes=None takes the training set\'s classes, '
            'and the config has no train_dataloader.dataset: give '
            'model.prompt.classes=(...).')
    prompt['classes'] = dataset_classes(dataset)


def dataset_classes(dataset: dict) -> Tuple[str, ...]:
    """The class names of a dataset config: its ``metainfo.classes``, a
    wrapped dataset's, or its dataset class's default (``METAINFO``)."""
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes:
        return tuple(classes)
    if dataset.get('dataset') is not None:  # RepeatDataset, ClassBalanced..
        return dataset_classes(dataset['dataset'])
    dataset_type = DATASETS.get(dataset.get('type'))
    classes = getattr(dataset_type, 'METAINFO', {}).get('classes')
    if not classes:
        raise ValueError(
            f'model.prompt.classes=None takes the training set\'s classes; '
            f'train_dataloader.dataset ({dataset.get("type")}) names none: '
            f'set its metainfo=dict(classes=(...)) or '
            f'model.prompt.classes=(...).')
    return tuple(classes)


def classes_as_tuples(node) -> None:
    """Every ``metainfo.classes`` in ``node`` (a config, or any part of it)
    as a tuple, in place.

    ``--cfg-options ...metainfo.classes=[a,b]`` gives a list; mmdet's
    GLIP and Grounding DINO use the class names as the caption and hash
    it (a list fails deep inside ``loss`` with ``unhashable type``).
    """
    if isinstance(node, dict):
        classes = (node.get('metainfo') or {}).get('classes') \
            if isinstance(node.get('metainfo'), dict) else None
        if isinstance(classes, list):
            node['metainfo']['classes'] = tuple(classes)
        for value in node.values():
            classes_as_tuples(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            classes_as_tuples(value)

