"""Variants of zoo methods for the transfer suite: SDPT's ablations and full
fine-tuning with mmdet's own fine-tuning recipe.

Each SDPT variant starts from the zoo's ``sdpt`` demo config (K=16 tokens on
every fusion layer, synchronous mode, U(-1, 1) init) and changes one thing.
The reference mode has its own zoo config (``sdpt_reference``).
``sdpt_with_head`` is the trainable set the public SDPT training command uses
(prompts and the detection head); ``head_only`` trains that head alone, to
show how much of a gain comes from the head. ``full_ft_mmdet`` is the zoo's
full fine-tuning with the parameter-wise options of mmdet's fine-tuning
configs of that detector (``paramwise_cfg``: a tenth of the learning rate
for Grounding DINO's backbone, no weight decay on position embeddings and
norms), beside the plain one (one learning rate for every parameter).
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
    'full_ft_mmdet': dict(label='full fine-tuning (mmdet recipe)',
                          base='full_ft', mmdet_recipe=True),
}

#: ``paramwise_cfg.custom_keys`` of mmdet 3.3's fine-tuning configs:
#: grounding_dino_swin-t_finetune_16xb2_1x_coco.py and
#: glip_atss_swin-t_a_fpn_dyhead_16xb2_ms-2x_funtune_coco.py
MMDET_FINETUNE_KEYS = {
    'gdino': {'absolute_pos_embed': dict(decay_mult=0.),
              'backbone': dict(lr_mult=0.1)},
    'glip': {'absolute_pos_embed': dict(decay_mult=0.),
             'relative_position_bias_table': dict(decay_mult=0.),
             'norm': dict(decay_mult=0.)},
}


def variant_base(name: str) -> str:
    """The zoo method the variant ``name`` starts from."""
    return ABLATIONS[name].get('base', 'sdpt')


def apply_ablation(cfg, det: str, name: str):
    """Turn ``cfg`` (carrying the zoo method :func:`variant_base`) into the
    variant ``name``."""
    spec = ABLATIONS[name]
    if spec.get('mmdet_recipe'):
        cfg.optim_wrapper.paramwise_cfg = dict(
            custom_keys=MMDET_FINETUNE_KEYS[det])
    elif spec.get('no_prompt'):
        cfg.model.prompt = None
    else:
        cfg.model.prompt = dict(cfg.model.prompt, **spec.get('prompt', {}))
    if spec.get('head'):
        cfg.model.extra_trainable = list(
            cfg.model.get('extra_trainable', [])) + (
                ADAPTERS[det]().detection_head_patterns())
    cfg.experiment = dict(cfg.experiment, method=spec['label'])
    return cfg
