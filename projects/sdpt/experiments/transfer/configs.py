"""The configs of the transfer suite's runs: the transfer config of a
detector, with a method (a zoo method or an SDPT ablation), a shift's
k-shot split and the corpus at its root."""
import copy
import functools
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.config import Config

from ...datasets.synthetic.corpus import SHIFTS, shift_dir
from ...engine.config import fill_prompt_classes
from ...utils.paths import REPO_ROOT
from ..ablations import ABLATIONS, apply_ablation, variant_base
from ..zoo import zoo_config, zoo_methods

#: the detectors' names in the rows and tables of the suite
DETECTOR_NAMES = {'glip': 'GLIP (tiny)', 'gdino': 'Grounding DINO (tiny)'}
#: the corpus root the configs are written for
DEFAULT_CORPUS_ROOT = 'data/synthetic/'


def transfer_config(det: str) -> str:
    """The transfer config file of ``det`` (``configs/transfer/``)."""
    return osp.join(REPO_ROOT, 'configs', 'transfer',
                    f'{det}_tiny_synthetic.py')


def suite_methods(det: str = 'gdino') -> List[str]:
    """The zoo's methods, then SDPT's ablations."""
    return zoo_methods(det) + list(ABLATIONS)


#: The weight decay of every method's runs in the suite: one value for all,
#: like every other hyper-parameter but the learning rate (which is
#: selected per method). ``recipe`` keeps each zoo config's own decay (GLIP's
#: language prompt: 0.25; AdamW's decoupled decay then scales the offsets by
#: 1 - lr x 0.25 each step, which turns negative at the lrs it selects).
WEIGHT_DECAY_RULES = ('shared', 'recipe')
DEFAULT_WEIGHT_DECAY_RULE = 'shared'
SHARED_WEIGHT_DECAY = 0.01


def zoo_method_of(method: str) -> str:
    """The zoo method ``method`` starts from (a variant: its base)."""
    return variant_base(method) if method in ABLATIONS else method


def apply_method(cfg, det: str, method: str,
                 weight_decay: str = DEFAULT_WEIGHT_DECAY_RULE):
    """Give ``cfg`` the method ``method`` (a zoo method or a variant), with
    the ``weight_decay`` rule (:data:`WEIGHT_DECAY_RULES`).

    Zoo configs differ from their base only in these fields (a test checks
    it), so copying them moves the method exactly.
    """
    if weight_decay not in WEIGHT_DECAY_RULES:
        raise ValueError(f'weight decay rule {weight_decay!r}: choose one of '
                         f'{", ".join(WEIGHT_DECAY_RULES)}')
    source = read_config(zoo_config(zoo_method_of(method), det))
    cfg.model.prompt = source.model.get('prompt')
    cfg.model.extra_trainable = source.model.get('extra_trainable', [])
    cfg.optim_wrapper.optimizer.lr = source.optim_wrapper.optimizer.lr
    cfg.optim_wrapper.optimizer.weight_decay = (
        source.optim_wrapper.optimizer.weight_decay
        if weight_decay == 'recipe' else SHARED_WEIGHT_DECAY)
    cfg.evaluate_only = source.get('evaluate_only', False)
    cfg.experiment = dict(cfg.experiment, method=source.experiment['method'])
    if method in ABLATIONS:
        apply_ablation(cfg, det, method)
    return cfg


def recipe_lr(det: str, method: str) -> float:
    """The learning rate of ``method``'s zoo config for ``det``."""
    return float(_config_file(zoo_config(
        zoo_method_of(method), det)).optim_wrapper.optimizer.lr)


@functools.lru_cache(maxsize=None)
def _config_file(path: str) -> Config:
    """``Config.fromfile(path)``, read once per process; not to be changed
    (:func:`read_config` hands out copies)."""
    return Config.fromfile(path)


def read_config(path: str) -> Config:
    """A copy of the config at ``path``, read once per process: a suite's
    plan asks for every cell's learning rate and each run builds on two
    configs, and reading a config that inherits from ``mmdet::`` takes
    0.3-0.5 s (the whole suite's report: 368 reads, 3.3 min)."""
    return copy.deepcopy(_config_file(path))


def set_corpus_root(cfg, root: str):
    """Point every corpus path of a transfer config at ``root``."""
    root = root.rstrip('/') + '/'

    def fix(value):
        if isinstance(value, str) and value.startswith(DEFAULT_CORPUS_ROOT):
            return root + value[len(DEFAULT_CORPUS_ROOT):]
        if isinstance(value, dict):
            for k in value:
                value[k] = fix(value[k])
        elif isinstance(value, list):
            value[:] = [fix(v) for v in value]
        return value

    for key in list(cfg.keys()):
        cfg[key] = fix(cfg[key])
    return cfg


def split_loader(cfg, data_root: str, classes: Sequence[str], split: str,
                 ann_file: Optional[str] = None):
    """(dataloader, evaluator) configs evaluating ``split`` of
    ``data_root`` with ``classes`` (``cfg``'s test pipeline)."""
    data_root = data_root.rstrip('/') + '/'
    ann_file = ann_file or f'annotations/instances_{split}.json'
    loader = copy.deepcopy(cfg.test_dataloader)
    loader.dataset.update(data_root=data_root, ann_file=ann_file,
                          metainfo=dict(classes=tuple(classes)),
                          data_prefix=dict(img=f'{split}/'))
    evaluator = dict(copy.deepcopy(cfg.test_evaluator),
                     ann_file=data_root + ann_file)
    return loader, evaluator


def apply_shift(cfg, root: str, shift: str, shots: int, seed: int):
    """Train on the k-shot split of ``shift``; val = dev, test = test."""
    data_root = shift_dir(root, shift) + '/'
    classes = SHIFTS[shift].classes
    cfg.metainfo = dict(classes=classes)
    cfg.train_dataloader.dataset.update(
        data_root=data_root, metainfo=dict(classes=classes),
        ann_file=f'annotations/instances_train_{shots}shot_seed{seed}.json')
    cfg.val_dataloader, cfg.val_evaluator = split_loader(
        cfg, data_root, classes, 'dev')
    cfg.test_dataloader, cfg.test_evaluator = split_loader(
        cfg, data_root, classes, 'test')
    cfg.shots, cfg.seed = shots, seed
    # methods with vectors per class (classes=None) get the shift's
    fill_prompt_classes(cfg)
    return cfg
