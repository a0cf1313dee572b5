"""The configs of the transfer suite's runs: the transfer config of a
detector, with a method (a zoo method or an SDPT ablation), a shift's
k-shot split and the corpus at its root."""
import copy
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.config import Config

from ...datasets.synthetic.corpus import SHIFTS, shift_dir
from ...utils.paths import REPO_ROOT
from ..ablations import ABLATIONS, apply_ablation
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


def zoo_method_of(method: str) -> str:
    """The zoo method ``method`` starts from (an ablation: SDPT)."""
    return 'sdpt' if method in ABLATIONS else method


def apply_method(cfg, det: str, method: str):
    """Give ``cfg`` the method ``method`` (a zoo method or an ablation).

    Zoo configs differ from their base only in these fields (a test checks
    it), so copying them moves the method exactly.
    """
    source = Config.fromfile(zoo_config(zoo_method_of(method), det))
    cfg.model.prompt = source.model.get('prompt')
    cfg.model.extra_trainable = source.model.get('extra_trainable', [])
    # the method's recipe (GLIP's language prompt brings its own decay)
    for key in ('lr', 'weight_decay'):
        cfg.optim_wrapper.optimizer[key] = source.optim_wrapper.optimizer[key]
    cfg.evaluate_only = source.get('evaluate_only', False)
    cfg.experiment = dict(cfg.experiment, method=source.experiment['method'])
    if method in ABLATIONS:
        apply_ablation(cfg, det, method)
    return cfg


def recipe_lr(det: str, method: str) -> float:
    """The learning rate of ``method``'s zoo config for ``det``."""
    return float(Config.fromfile(zoo_config(
        zoo_method_of(method), det)).optim_wrapper.optimizer.lr)


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
    return cfg
