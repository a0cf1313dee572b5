"""What the test modules share, besides the fixtures of conftest.py.

The tiny GLIP / Grounding DINO of the demo configs, built with a method;
batches of the demo shapes; checkpoints written the way a training run
writes them (the base weights, a prompt checkpoint through
``PromptTuningHook``); a tool of ``tools/`` run in a child process; small
COCO files and class lists.
"""
import json
import os
import os.path as osp
import random
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from mmdet.datasets import CocoDataset
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import _load_checkpoint
from PIL import Image

import projects.sdpt  # noqa: F401  (registers the project's modules)
from projects.sdpt.detectors.text_encoder import set_text_encoder
from projects.sdpt.engine.hooks.prompt_tuning_hook import PromptTuningHook
from projects.sdpt.utils.paths import REPO_ROOT

TOOLS = osp.join(REPO_ROOT, 'tools')
DEMO_CONFIGS = {
    'glip': osp.join(REPO_ROOT, 'configs/demo/sdpt_glip_tiny_demo.py'),
    'gdino': osp.join(REPO_ROOT, 'configs/demo/sdpt_gdino_tiny_demo.py'),
}
DETECTORS = ['glip', 'gdino']
#: tools/train.py options: deterministic, 2 iterations, a checkpoint every
#: iteration, no validation.
DETERMINISTIC = [
    '--cfg-options', 'randomness.seed=0', 'randomness.deterministic=True',
    'train_dataloader.batch_size=1', 'train_cfg.max_iters=2',
    'train_cfg.val_begin=100',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=10',
    'default_hooks.logger.interval=1'
]
#: The classes of the demo's shapes data set.
SHAPES = ('circle', 'square', 'triangle')


# ---- a tool in a child process ----------------------------------------------
@dataclass
class ToolRun:
    """A finished child process: exit status and what it printed."""
    code: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout + self.stderr


def tool_env(**env):
    """The environment of a child process: this one's, warnings off,
    ``PYTHON`` set to this interpreter (for the shell scripts), ``env``
    added."""
    return dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS='ignore',
                **env)


def tool_command(tool, *args):
    """The command line of ``tool`` (a file of ``tools/``, or a path) with
    ``args``: ``.sh`` through bash, anything else with this Python."""
    path = str(tool if osp.isabs(str(tool)) else osp.join(TOOLS, tool))
    launcher = 'bash' if path.endswith('.sh') else sys.executable
    return [launcher, path, *map(str, args)]


def run(tool, *args, cwd=None, ok=True, timeout=600, **env) -> ToolRun:
    """Run ``tool`` with ``args`` in a child process, as a user does
    (:func:`tool_command`, in :func:`tool_env` with ``env``). ``ok=True``
    asserts it exits 0 (the output's tail as the message); ``ok=False``
    accepts any exit status."""
    proc = subprocess.run(
        tool_command(tool, *args), cwd=cwd, env=tool_env(**env),
        capture_output=True, text=True, timeout=timeout)
    result = ToolRun(proc.returncode, proc.stdout, proc.stderr)
    if ok:
        assert result.code == 0, result.out[-4000:]
    return result


# ---- the tiny detectors of the demo configs ---------------------------------
def demo_config(name, demo_root, **prompt):
    """The demo config of ``name`` with paths under ``demo_root``; ``prompt``
    updates its method (SDPT)."""
    cfg = Config.fromfile(DEMO_CONFIGS[name])
    set_text_encoder(cfg.model.detector,
                     str(demo_root / 'data' / 'demo' / 'bert'))
    cfg.model.prompt.update(prompt)
    return cfg


def build_model(name, demo_root, seed=0, **prompt):
    """The demo's prompt-tuned detector (SDPT, updated by ``prompt``),
    initialised from ``seed``: ``(model, cfg)``."""
    register_all_modules()
    cfg = demo_config(name, demo_root, **prompt)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model, cfg


def build_base(name, demo_root, seed=0):
    """The demo's detector without a method, initialised from ``seed``."""
    register_all_modules()
    cfg = demo_config(name, demo_root)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model.detector)
    model.init_weights()
    return model


def build_with_prompt(name, demo_root, prompt, seed=0, **model):
    """The demo's detector with the method ``prompt`` (a config; None: no
    method) in place of SDPT, ``model`` updating the wrapper's options; built
    from ``seed``, not initialised: ``(model, cfg)``."""
    register_all_modules()
    cfg = demo_config(name, demo_root)
    cfg.model.prompt = prompt
    cfg.model.update(model)
    torch.manual_seed(seed)
    return MODELS.build(cfg.model), cfg


# A small configuration of every method of the zoo (one row each).
METHODS = {
    'sdpt': dict(type='SDPTPrompt', num_tokens=4),
    'sdpt_reference': dict(type='SDPTPrompt', num_tokens=4, mode='reference'),
    'independent_dual': dict(type='IndependentDualPrompt', num_tokens=4),
    'text': dict(type='TextContextPrompt', num_context=4),
    'text_per_class': dict(
        type='TextContextPrompt', num_context=2, class_specific=True,
        classes=SHAPES),
    'visual': dict(type='VisualDeepPrompt', num_tokens=3),
    'dpt': dict(type='DPTPrompt', text=dict(num_context=4),
                visual=dict(num_tokens=3)),
    # 3 classes > 2 candidates: candidates come from the zero-shot detector
    'dpt_zero_shot_candidates': dict(
        type='DPTPrompt', text=dict(num_context=2), visual=dict(num_tokens=2),
        num_candidates=2),
    'language_prompt': dict(type='LanguagePromptOffset', num_positions=16),
    'linear_probe': dict(type='LinearProbing'),
    'bitfit': dict(type='BitFit'),
    'lora': dict(type='LoRA', rank=4),
    'lora_head': dict(type='LoRA', rank=2, layers=[0],
                      projections=['v_proj', 'out_l_proj'], head=True),
    'fusion_adapter': dict(type='FusionBottleneckAdapter', bottleneck=8),
    'maple': dict(type='MaPLePrompt', num_context=2, stages=2),
    'class_features': dict(type='LearnedClassFeatures', num_tokens=2,
                           classes=SHAPES),
}


def perturb_zero_initialised(method, std=0.1):
    """Test-only: give the method's all-zero parameters (the language
    offset, LoRA's B, the adapters' up-projections) small random values.

    At zero these methods compute exactly the base detector, so "switched on
    changes it", the batch equivalence and gradients reaching every
    parameter (LoRA's A gets none while B is zero) would hold only after
    training. Parameters drawn at random are left as they are.
    """
    with torch.no_grad():
        for param in method.parameters():
            if not param.any():
                param.normal_(std=std)


def build_method(name, demo_root, prompt, seed=0, perturb=True, **model):
    """:func:`build_with_prompt`, its zero-initialised parameters perturbed
    (:func:`perturb_zero_initialised`) unless ``perturb=False``."""
    built, cfg = build_with_prompt(name, demo_root, prompt, seed, **model)
    if perturb:
        perturb_zero_initialised(built.prompt_tuning)
    return built, cfg


# ---- batches of the demo shapes ---------------------------------------------
def make_batch(model, demo_root, image_ids=(1, 2), train=False, cfg=None):
    """A preprocessed batch of demo val images (same size), with GT."""
    shapes = demo_root / 'data' / 'demo' / 'shapes'
    pipeline = cfg.train_pipeline if train else cfg.test_pipeline
    if train:  # deterministic: no random flip
        pipeline = [t for t in pipeline if t['type'] != 'RandomFlip']
    dataset = CocoDataset(
        data_root=str(shapes),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=SHAPES),
        pipeline=pipeline,
        return_classes=True,
        test_mode=not train)
    items = [dataset[i - 1] for i in image_ids]
    return model.data_preprocessor(pseudo_collate(items), training=train)


def raw_train_batch(demo_root, cfg, image_ids=(0, 1)):
    """Demo training images as the data loader yields them (no random
    flip), for ``train_step`` or the data preprocessor."""
    shapes = demo_root / 'data' / 'demo' / 'shapes'
    dataset = CocoDataset(
        data_root=str(shapes),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=SHAPES),
        pipeline=[t for t in cfg.train_pipeline if t['type'] != 'RandomFlip'],
        return_classes=True)
    return pseudo_collate([dataset[i] for i in image_ids])


def predict(model, batch):
    """(boxes, scores, labels) of each image, in eval mode, without grad."""
    model.eval()
    with torch.no_grad():
        results = model(**batch, mode='predict')
    return [(r.pred_instances.bboxes, r.pred_instances.scores,
             r.pred_instances.labels) for r in results]


def fusion_call(layer, name, batch=2, n_v=12, n_l=7, seed=1):
    """Inputs of one fusion attention (``layer``, a ``FusionLayer``) in the
    detector ``name``'s mask convention, with padding in both modalities:
    ``(args, kwargs)``."""
    gen = torch.Generator().manual_seed(seed)
    vision = torch.randn(batch, n_v, layer.v_dim, generator=gen)
    lang = torch.randn(batch, n_l, layer.l_dim, generator=gen)
    if name == 'glip':  # int, 1 = real token; no visual mask
        mask_l = torch.ones(batch, n_l, dtype=torch.long)
        mask_l[0, -2:] = 0
        mask_v = None
    else:  # bool, True = padding
        mask_l = torch.zeros(batch, n_l, dtype=torch.bool)
        mask_l[0, -2:] = True
        mask_v = torch.zeros(batch, n_v, dtype=torch.bool)
        mask_v[1, -3:] = True
    return (vision, lang), dict(attention_mask_v=mask_v,
                                attention_mask_l=mask_l)


# ---- checkpoints ------------------------------------------------------------
def base_checkpoint(model, shift=None):
    """The detector checkpoint of a prompt-tuned ``model`` without its method:
    the base weights the prompts are tuned on and completed with.
    ``shift`` (``{parameter name: added value}``) makes other base weights."""
    state = {k: v.clone() for k, v in model.state_dict().items()
             if not k.startswith('prompt_tuning.')}
    for key, delta in (shift or {}).items():
        state[key] = state[key] + delta
    return dict(meta={}, state_dict=state)


def save_base_weights(model, path, shift=None):
    """:func:`base_checkpoint` written to ``path``; the path as a string."""
    torch.save(base_checkpoint(model, shift), path)
    return str(path)


def checkpoint_state(path):
    """The state dict of the checkpoint file ``path``, loaded as the
    project loads checkpoints."""
    return _load_checkpoint(str(path), map_location='cpu')['state_dict']


def save_prompt_checkpoint(model, path=None, *, hook=None, runner=None,
                           iter=-1, classes=None, **cfg):
    """Save a prompt checkpoint of ``model`` through PromptTuningHook, as a
    training run does: the method's parameters, its signature and its card.

    ``hook``: the hook (else a fresh one); ``runner``: what the hook reads
    (else one made of ``model``, ``iter``, the config ``cfg`` and the
    training ``classes``). Written to ``path`` when given; returned. The
    ``meta`` has the training data's ``dataset_meta`` as mmengine's
    ``Runner.save_checkpoint`` writes it (mmdet's ``init_detector`` reads
    the class names there).
    """
    meta = {}
    if classes is not None:
        meta['dataset_meta'] = dict(classes=tuple(classes))
    if runner is None:
        if classes is not None:
            cfg['train_dataloader'] = dict(dataset=dict(metainfo=dict(
                classes=classes)))
        runner = SimpleNamespace(model=model, cfg=cfg, iter=iter,
                                 logger=MMLogger.get_current_instance())
    checkpoint = dict(state_dict={
        k: v.clone() for k, v in model.state_dict().items()}, meta=meta)
    (hook or PromptTuningHook()).before_save_checkpoint(runner, checkpoint)
    if path is not None:
        torch.save(checkpoint, path)
    return checkpoint


# ---- data -------------------------------------------------------------------
def write_coco(path, img_dir, classes, n_images=3, size=48):
    """A tiny COCO file with real images: one box of each class each."""
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(1, n_images + 1):
        name = f'img{i}.jpg'
        Image.new('RGB', (size, size), (i * 40, 80, 120)).save(img_dir / name)
        images.append(dict(id=i, file_name=name, width=size, height=size))
        for c in range(len(classes)):
            anns.append(dict(id=len(anns) + 1, image_id=i,
                             category_id=c + 1, bbox=[2 + 4 * c, 2, 10, 12],
                             area=120, iscrowd=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(
        images=images, annotations=anns,
        categories=[dict(id=c + 1, name=n) for c, n in enumerate(classes)])))


def long_class_list(n=120):
    """Made-up names of 3-4 letters: 3-4 word pieces each with the tiny
    BERT's vocabulary (about 5 tokens a class with the "."), far above
    256 tokens together; a chunk of 40 fits."""
    rng = random.Random(0)
    letters = 'abcdefghijklmnopqrstuvwxyz'
    return tuple(''.join(rng.choice(letters)
                         for _ in range(rng.randint(3, 4)))
                 for _ in range(n))
