"""Text prompt tuning (CoOp) for GLIP and Grounding DINO.

M learnable context vectors are placed before every class name, in the text
encoder's input embedding space. The detectors build their caption from the
class names ("circle. square. ") and find each name's tokens by character
span; the method makes them build "[MASK] x M circle. [MASK] x M square. "
instead (through mmdet's own prefix mechanism for enhanced prompts, so class
spans, positive maps and text masks are computed by mmdet on the real caption)
and replaces the embedding of the M placeholder tokens before each name with
the context vectors. The placeholder is the tokenizer's mask token: a single
token in every BERT vocabulary, never split and never lower-cased.

Example::

    prompt = dict(type='TextContextPrompt', num_context=16)
    # one context per class (needs the class list, in dataset order):
    prompt = dict(type='TextContextPrompt', num_context=16,
                  class_specific=True, classes=('circle', 'square'))

Captions given as free text with explicit ``tokens_positive`` (grounding
data) are not class lists and are left unchanged.
"""
import re
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .base import PromptMethod, ReplacedMethod

CAPTION_BUILDERS = ('to_plain_text_prompts', 'to_enhance_text_prompts')


def clean_class_name(name: str) -> str:
    """The form mmdet's GLIP / Grounding DINO give a class name in captions
    (``clean_label_name``): no parentheses, underscores as spaces."""
    name = re.sub(r'\(.*\)', '', name)
    name = re.sub(r'_', ' ', name)
    return re.sub(r'  ', ' ', name)


def context_positions(input_ids: Tensor, placeholder_id: int):
    """Where the placeholders are, and for each its index inside its run and
    the index of its run in the row.

    Returns ``(is_context, index_in_run, run_index)``, all (B, L).
    """
    is_context = input_ids == placeholder_id
    before = torch.zeros_like(is_context)
    before[:, 1:] = is_context[:, :-1]
    starts = is_context & ~before
    positions = torch.arange(
        input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    run_start = torch.where(starts, positions,
                            torch.zeros_like(positions)).cummax(dim=1).values
    run_index = starts.long().cumsum(dim=1) - 1
    return is_context, positions - run_start, run_index


@MODELS.register_module()
class TextContextPrompt(PromptMethod):
    """CoOp context vectors before every class name.

    Args:
        num_context (int): M context vectors (CoOp: 16).
        class_specific (bool): one set of M vectors per class instead of one
            shared set. Needs ``classes``.
        classes (Sequence[str], optional): the dataset's class names, in
            order (required when ``class_specific``).
        init_std (float): vectors start as N(0, init_std) (CoOp: 0.02).

    Parameters: ``context`` of shape (1 or num_classes, M, text width).
    """

    def __init__(self,
                 num_context: int = 16,
                 class_specific: bool = False,
                 classes: Optional[Sequence[str]] = None,
                 init_std: float = 0.02):
        super().__init__()
        if num_context < 1:
            raise ValueError(f'num_context must be >= 1, got {num_context}')
        if class_specific and not classes:
            raise ValueError(
                'TextContextPrompt(class_specific=True) needs classes=<the '
                "dataset's class names, in order>, e.g. "
                'classes=_base_.class_name.')
        self.num_context = num_context
        self.class_specific = class_specific
        self.classes = list(classes) if classes else None
        self.init_std = init_std
        self._class_index = ({
            clean_class_name(name): i
            for i, name in enumerate(self.classes)
        } if self.classes else {})
        # caption string -> class index of each context run (class-specific)
        self._caption_classes: Dict[str, List[int]] = {}
        self._captions: List[str] = []

    def attach(self, detector, adapter):
        self.adapter = adapter
        language_model = detector.language_model
        tokenizer = language_model.tokenizer
        if tokenizer.mask_token_id is None:
            raise ValueError(
                f'The text encoder tokenizer ({type(tokenizer).__name__}) has '
                f'no mask token to hold the context positions.')
        self.placeholder_id = tokenizer.mask_token_id
        self.context_text = ' '.join([tokenizer.mask_token] *
                                     self.num_context) + ' '
        embeddings = adapter.text_input_embeddings(detector)
        rows = len(self.classes) if self.class_specific else 1
        self.context = nn.Parameter(
            torch.randn(rows, self.num_context, embeddings.embedding_dim) *
            self.init_std)
        build_enhanced = detector.to_enhance_text_prompts
        for name in CAPTION_BUILDERS:
            original = getattr(detector, name)
            self._keep(
                ReplacedMethod(detector, name,
                               self._caption_builder(original,
                                                     build_enhanced)))
        self._keep(
            language_model.register_forward_pre_hook(self._remember_captions))
        self._keep(embeddings.register_forward_hook(self._insert_context))
        return self

    def _caption_builder(self, original, build_enhanced):

        def build(original_caption, enhanced_text_prompts=None):
            if not self.enabled:
                if enhanced_text_prompts is None:
                    return original(original_caption)
                return original(original_caption, enhanced_text_prompts)
            merged = {}
            for word in original_caption:
                entry = dict((enhanced_text_prompts or {}).get(word, {}))
                entry['prefix'] = self.context_text + entry.get('prefix', '')
                merged[word] = entry
            caption, tokens_positive = build_enhanced(original_caption,
                                                      merged)
            if self.class_specific:
                self._caption_classes[caption] = [
                    self._class_of(word) for word in original_caption
                ]
            return caption, tokens_positive

        return build

    def _class_of(self, word: str) -> int:
        try:
            return self._class_index[word]
        except KeyError:
            raise KeyError(
                f'Class name {word!r} in the caption is not in '
                f'prompt.classes {self.classes}; set prompt.classes to the '
                f"dataset's class names, in order.") from None

    def _remember_captions(self, module, args):
        captions = args[0] if args else []
        self._captions = [captions] if isinstance(captions,
                                                  str) else list(captions)

    def _insert_context(self, module, args, output):
        if not self.enabled:
            return None
        input_ids = args[0]
        is_context, index_in_run, run_index = context_positions(
            input_ids, self.placeholder_id)
        if not bool(is_context.any()):
            return None
        if int(index_in_run[is_context].max()) >= self.num_context:
            raise ValueError(
                f'A caption holds more than {self.num_context} consecutive '
                f'{self.context_text.split()[0]} tokens: class names must not '
                f'contain the placeholder token.')
        if self.class_specific:
            row_class = self._run_classes(run_index, is_context)
        else:
            row_class = torch.zeros_like(run_index)
        row_class = row_class.clamp(min=0)
        index_in_run = index_in_run.clamp(0, self.num_context - 1)
        tasks = self.task_batch
        if tasks is None:
            context = self.context.to(output.dtype)[row_class, index_in_run]
        else:
            # a prompt bank: each caption (one per image) its task's context
            tasks.check_batch_size(input_ids.shape[0])
            contexts = torch.stack([
                tasks.parameters[name]['context'] for name in tasks.order
            ]).to(output.dtype)
            row_task = tasks.index[:, None].expand_as(row_class)
            context = contexts[row_task, row_class, index_in_run]
        return torch.where(is_context.unsqueeze(-1), context, output)

    def mixed_task_support(self):
        if self.class_specific:
            return ('class_specific=True ties each context to a class of '
                    'one class list; shared context (class_specific=False) '
                    'runs mixed-task batches')
        return None  # one context per caption, and a caption per image

    def _run_classes(self, run_index: Tensor, is_context: Tensor) -> Tensor:
        """(B, L) class index of the context run each position is in."""
        if len(self._captions) != run_index.shape[0]:
            raise RuntimeError(
                'TextContextPrompt: the text encoder was called without the '
                'captions of this batch.')
        classes = torch.zeros_like(run_index)
        for row, caption in enumerate(self._captions):
            try:
                run_classes = self._caption_classes[caption]
            except KeyError:
                raise RuntimeError(
                    'TextContextPrompt(class_specific=True) got a caption '
                    'that was not built from class names; class-specific '
                    'context needs class-name prompts.') from None
            table = run_index.new_tensor(run_classes)
            runs = run_index[row].clamp(0, len(run_classes) - 1)
            classes[row] = torch.where(is_context[row], table[runs],
                                       torch.zeros_like(runs))
        return classes

    def signature(self):
        return dict(
            super().signature(),
            num_context=self.num_context,
            class_specific=self.class_specific,
            num_classes=len(self.classes) if self.class_specific else None)
