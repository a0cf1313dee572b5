"""DPT: Dual-modality Prompt Tuning, adapted to GLIP and Grounding DINO.

DPT (the second source document) was written for CLIP classification. Here it
is the dual-modal baseline, in three parts:

* text prompts: CoOp context vectors before every class name
  (:class:`TextContextPrompt`);
* visual prompts: VPT-deep tokens in every Swin block
  (:class:`VisualDeepPrompt`);
* class-aware visual prompts (CAVPT, :class:`ClassAwareVisualPrompt`): in the
  last Swin block(s), the text feature of each candidate class (the text
  encoder's output over the class name's tokens, with the learned context) is
  projected to the block width and queries a single-head cross-attention over
  that block's (detached) image tokens plus a few learnable tokens; the
  result, plus the projected query, through LayerNorm, gives one class-aware
  token per candidate class, joined to the block's windows as extra
  keys/values. An auxiliary loss classifies these tokens: for detection,
  multi-label, "is this class in the image".

Candidate classes: every prompt class when there are at most
``num_candidates``; otherwise the top ``num_candidates`` classes of the
zero-shot detector (prompts off) on the same image, by best box score.
"""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .base import PromptMethod
from .text_prompt import TextContextPrompt
from .visual_prompt import VisualDeepPrompt


class ClassAwareVisualPrompt(nn.Module):
    """Class-aware tokens for one Swin block.

    Args:
        text_dim (int): width of the class text features.
        width (int): the block's channel width.
        num_learnable (int): learnable tokens joined to the image tokens as
            keys/values of the cross-attention.
    """

    def __init__(self, text_dim: int, width: int, num_learnable: int = 4):
        super().__init__()
        self.query_proj = nn.Linear(text_dim, width)
        self.cross_attn = nn.MultiheadAttention(width, 1, batch_first=True)
        self.learnable = nn.Parameter(torch.randn(num_learnable, width) * 0.02)
        self.norm = nn.LayerNorm(width)
        self.classifier = nn.Linear(width, 1)

    def forward(self, class_features: Tensor,
                image_tokens: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, K, text_dim), (B, HW, C) -> tokens (B, K, C), logits (B, K)."""
        query = self.query_proj(class_features)
        memory = torch.cat([
            image_tokens.detach(),
            self.learnable.to(image_tokens.dtype).expand(
                image_tokens.shape[0], -1, -1)
        ], dim=1)
        attended, _ = self.cross_attn(query, memory, memory,
                                      need_weights=False)
        tokens = self.norm(attended + query)
        return tokens, self.classifier(tokens).squeeze(-1)


def _forward_call(args, kwargs):
    names = ('inputs', 'data_samples', 'mode')
    values = dict(zip(names, args))
    values.update(kwargs)
    return values.get('inputs'), values.get('data_samples'), values.get(
        'mode', 'tensor')


@MODELS.register_module()
class DPTPrompt(PromptMethod):
    """Text prompts + VPT-deep + class-aware visual prompts.

    Args:
        text (dict): :class:`TextContextPrompt` arguments.
        visual (dict): :class:`VisualDeepPrompt` arguments.
        num_candidates (int): K candidate classes per image (DPT: 10).
        class_aware_blocks (int): how many of the last Swin blocks get
            class-aware tokens.
        num_learnable (int): learnable key/value tokens of each CAVPT.
        loss_weight (float): weight of the auxiliary classification loss.
    """

    def __init__(self,
                 text: Optional[dict] = None,
                 visual: Optional[dict] = None,
                 num_candidates: int = 10,
                 class_aware_blocks: int = 1,
                 num_learnable: int = 4,
                 loss_weight: float = 1.0):
        super().__init__()
        self.text = TextContextPrompt(**(text or {}))
        self.visual = VisualDeepPrompt(**(visual or {}))
        self.num_candidates = num_candidates
        self.class_aware_blocks = class_aware_blocks
        self.num_learnable = num_learnable
        self.loss_weight = loss_weight
        self.class_aware = nn.ModuleDict()
        self._batch: Optional[Dict] = None
        self._logits: List[Tensor] = []
        self._current: Dict[str, Optional[Tensor]] = {}

    def attach(self, detector, adapter):
        self.adapter = adapter
        self.text.attach(detector, adapter)
        self.visual.attach(detector, adapter)
        backbone = adapter.image_backbone(detector)
        blocks = [(f'stage{i}_block{j}', block)
                  for i, stage in enumerate(backbone.stages)
                  for j, block in enumerate(stage.blocks)]
        text_dim = self.text.context.shape[-1]
        for key, block in blocks[-self.class_aware_blocks:]:
            self.class_aware[key] = ClassAwareVisualPrompt(
                text_dim, block.attn.w_msa.qkv.in_features,
                self.num_learnable)
            self.visual.blocks.setdefault(key, block)
            self._keep(
                block.register_forward_pre_hook(self._make_block_hook(key)))
            self.visual.set_extra_tokens(key, self._provider(key))
        self.visual.hook_blocks()
        # ``detector`` is held by closures only: storing it on this module
        # would make it a submodule of its own submodule.
        self._keep(
            detector.register_forward_pre_hook(
                self._make_batch_hook(detector), with_kwargs=True))
        self._keep(
            detector.register_forward_hook(
                self._add_auxiliary_loss, with_kwargs=True))
        return self

    # ---- per batch: candidate classes and their text features -----------
    def _make_batch_hook(self, detector):

        def start_batch(module, args, kwargs):
            self._batch = None
            self._logits = []
            self._current = {}
            inputs, data_samples, mode = _forward_call(args, kwargs)
            if not self.enabled or not data_samples or mode == 'tensor':
                return None
            self._batch = self._prepare(detector, inputs, data_samples)
            return None

        return start_batch

    @staticmethod
    def _class_names(sample) -> List[str]:
        text = sample.text
        if isinstance(text, str):  # "a. b. c." captions of custom entities
            return [t for t in text.strip('. ').split('. ') if t]
        return list(text)

    def _prepare(self, detector, inputs, data_samples) -> Dict:
        names = [tuple(self._class_names(s)) for s in data_samples]
        features = {n: self._class_features(detector, n) for n in set(names)}
        if max(len(n) for n in names) <= self.num_candidates:
            candidates = [torch.arange(len(n)) for n in names]
        else:
            candidates = self._zero_shot_candidates(detector, inputs,
                                                    data_samples)
        queries = torch.stack(
            [features[n][c.to(features[n].device)]
             for n, c in zip(names, candidates)])
        width = queries.shape[1]
        padded = [F.pad(c, (0, width - len(c)), value=-1) for c in candidates]
        return dict(queries=queries, candidates=torch.stack(padded))

    def _class_features(self, detector, names: Tuple[str]) -> Tensor:
        """(num_classes, text width): the text encoder's output averaged over
        each class name's tokens, with the learned context in the caption."""
        tokenized, caption, tokens_positive, _ = \
            detector.get_tokens_and_prompts(list(names), True)
        _, positive_map = detector.get_positive_map(tokenized,
                                                    tokens_positive)
        embedded = detector.language_model([caption])['embedded'][0]
        positive_map = positive_map[:, :embedded.shape[0]].to(embedded)
        return positive_map @ embedded

    @torch.no_grad()
    def _zero_shot_candidates(self, detector, inputs,
                              data_samples) -> List[Tensor]:
        training = {m: m.training for m in detector.modules()}
        detector.eval()
        self.enabled = False
        try:
            results = detector.predict(inputs, copy.deepcopy(data_samples))
        finally:
            self.enabled = True
            for module, mode in training.items():
                module.training = mode
        candidates = []
        for result, sample in zip(results, data_samples):
            num_classes = len(self._class_names(sample))
            best = torch.zeros(num_classes)
            pred = result.pred_instances
            if len(pred):
                best.scatter_reduce_(0, pred.labels.cpu(), pred.scores.cpu(),
                                     reduce='amax')
            candidates.append(best.topk(self.num_candidates).indices)
        return candidates

    # ---- in the backbone ---------------------------------------------------
    def _make_block_hook(self, key):

        def class_aware_tokens(module, args):
            module_tokens = None
            if self.enabled and self._batch is not None:
                image_tokens = args[0]
                queries = self._batch['queries'].to(image_tokens)
                module_tokens, logits = self.class_aware[key](queries,
                                                              image_tokens)
                self._logits.append(logits)
            self._current[key] = module_tokens
            return None

        return class_aware_tokens

    def _provider(self, key):
        return lambda: self._current.get(key)

    # ---- auxiliary loss ----------------------------------------------------
    def _add_auxiliary_loss(self, module, args, kwargs, output):
        _, data_samples, mode = _forward_call(args, kwargs)
        logits, self._logits = self._logits, []
        batch, self._batch = self._batch, None
        # ``_current`` stays until the next batch: a checkpointed block
        # recomputes its attention with the same tokens during backward.
        if mode != 'loss' or not self.enabled or not logits:
            return None
        candidates = batch['candidates'].to(logits[0].device)
        targets = torch.zeros_like(logits[0])
        for b, sample in enumerate(data_samples):
            labels = sample.gt_instances.labels.to(candidates.device)
            targets[b] = (candidates[b, :, None] == labels[None]).any(-1).to(
                targets.dtype)
        valid = (candidates >= 0).to(targets.dtype)
        loss = sum(
            (F.binary_cross_entropy_with_logits(
                lg, targets, reduction='none') * valid).sum() /
            valid.sum().clamp(min=1) for lg in logits) / len(logits)
        output = dict(output)
        output['loss_class_aware'] = loss * self.loss_weight
        return output

    def signature(self):
        return dict(
            super().signature(),
            text=self.text.signature(),
            visual=self.visual.signature(),
            class_aware_blocks=sorted(self.class_aware.keys()),
            num_learnable=self.num_learnable)
