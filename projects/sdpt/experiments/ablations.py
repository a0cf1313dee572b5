"""SDPT's ablations, as variants of the zoo's SDPT for the transfer suite.

Each variant starts from the zoo's ``sdpt`` demo config (K=16 tokens on every
fusion layer, synchronous mode, U(-1, 1) init) and changes one thing. The
reference mode has its own zoo config (``sdpt_reference``). ``sdpt_with_head``
is the trainable set the public SDPT training command uses (prompts and the
detection head); ``head_only`` trains that head alone, to show how much of a
gain comes from the head.
"""
from typing import Dict

from ..detectors.adapters import GLIPAdapter, GroundingDINOAdapter

ADAPTERS = {'glip': GLIPAdapter, 'gdino': GroundingDINOAdapter}

#: name -> (label, changes to the zoo SDPT's prompt, head trains, prompt on)
ABLATIONS: Dict[str, Dict] = {
    'sdpt_k8': dict(label='SDPT, K=8', prompt=dict(num_tokens=8)),
    'sdpt_k32': dict(label='SDPT, K=32', prompt=dict(num_tokens=32)),
    'sdpt_k100': dict(label='SDPT, K=100', prompt=dict(num_tokens=100)),
    'sdpt_first_layer': dict(label='SDPT, first fusion layer only',
                             prompt=dict(layers=[0])),
    'sdpt_shared': dict(label='SDPT, tokens shared across layers',
                        prompt=dict(share_across_layers=True)),
    'sdpt_normal_init': dict(label='SDPT, N(0, 0.02) init',
                             prompt=dict(init='normal')),
    'sdpt_with_head': dict(label='SDPT + detection head', head=True),
    'head_only': dict(label='detection head only', head=True,
                      no_prompt=True),
}


def apply_ablation(cfg, det: str, name: str):
    """Turn ``cfg`` (carrying the zoo's SDPT) into the variant ``name``."""
    spec = ABLATIONS[name]
    if spec.get('no_prompt'):
        cfg.model.prompt = None
    else:
        cfg.model.prompt = dict(cfg.model.prompt, **spec.get('prompt', {}))
    if spec.get('head'):
        cfg.model.extra_trainable = list(
            cfg.model.get('extra_trainable', [])) + (
                ADAPTERS[det]().detection_head_patterns())
    cfg.experiment = dict(cfg.experiment, method=spec['label'])
    return cfg
