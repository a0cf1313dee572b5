"""The method zoo as config files: the one place experiments list methods.

Every method of the zoo is one config per detector in ``configs/zoo/``
(real detectors: ``<method>_<detector>_coco_1shot.py``) and in
``configs/demo/zoo/`` (tiny detectors: ``<method>_<detector>_tiny_demo.py``),
each differing from its base only in ``model.prompt`` (and its label, its
trainable patterns and learning rate). Adding a config pair adds the method
to the comparison grid, the transfer benchmark and the zoo tests.
"""
import glob
import os.path as osp
from typing import List

from ..utils.paths import REPO_ROOT

DETECTORS = ('glip', 'gdino')
TIERS = {
    'demo': ('configs/demo/zoo', '{method}_{detector}_tiny_demo.py'),
    'real': ('configs/zoo', '{method}_{detector}_coco_1shot.py'),
}
#: reference rows first in every table; the others follow by name
REFERENCE_METHODS = ('zero_shot', 'full_ft')


def zoo_config(method: str, detector: str, tier: str = 'demo') -> str:
    folder, pattern = TIERS[tier]
    return osp.join(REPO_ROOT, folder,
                    pattern.format(method=method, detector=detector))


def zoo_methods(detector: str = 'gdino', tier: str = 'demo') -> List[str]:
    """Method keys with a ``tier`` config for ``detector``: the reference
    rows (zero-shot, full fine-tuning), then the others by name."""
    folder, pattern = TIERS[tier]
    prefix, suffix = pattern.split('{method}')
    suffix = suffix.format(detector=detector)
    found = [osp.basename(p)[len(prefix):-len(suffix)] for p in glob.glob(
        osp.join(REPO_ROOT, folder, prefix + '*' + suffix))]
    return sorted(found, key=lambda m: (
        REFERENCE_METHODS.index(m) if m in REFERENCE_METHODS else
        len(REFERENCE_METHODS), m))
