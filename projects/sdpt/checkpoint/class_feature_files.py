"""The learned class features of a prompt checkpoint
(:class:`~projects.sdpt.methods.class_features.LearnedClassFeatures`) as
one file per class, ``{class name: {'embedding': (M, width) tensor}}``: the
form mmdet's ``projects/GroundingdinoPT`` splits its prompts into."""
import os
import os.path as osp
import re
from typing import Dict

import torch

from .prompt_checkpoint import (
    PromptCheckpointMismatch,
    load_prompt_checkpoint,
    state_dict_of,
)

METHOD = 'LearnedClassFeatures'
FEATURES_KEY = 'prompt_tuning.features'


def class_feature_file_name(name: str) -> str:
    """A file name for class ``name``: characters a path cannot hold
    become ``_``."""
    return re.sub(r'[^\w.\- ]', '_', name).strip() + '.pth'


def export_class_features(checkpoint: str, out_dir: str) -> Dict[str, str]:
    """Write each class's features of the prompt checkpoint ``checkpoint``
    to ``out_dir``; returns ``{class name: file}``."""
    loaded, meta = load_prompt_checkpoint(checkpoint)
    if meta.get('method') != METHOD:
        raise PromptCheckpointMismatch(
            f'{checkpoint} holds a {meta.get("method")} prompt; only '
            f'{METHOD} checkpoints have class features '
            f"(model.prompt = dict(type='{METHOD}', ...)).")
    features = state_dict_of(loaded)[FEATURES_KEY]
    classes = meta['classes']
    names = [class_feature_file_name(name) for name in classes]
    if len(set(names)) != len(names):
        raise ValueError(f'{checkpoint}: classes {classes} give clashing '
                         f'file names {names}.')
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, file_name, vectors in zip(classes, names, features):
        path = osp.join(out_dir, file_name)
        torch.save({name: {'embedding': vectors.clone()}}, path)
        paths[name] = path
    return paths
