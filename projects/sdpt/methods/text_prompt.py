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
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS

from .placeholder_captions import PlaceholderCaptionMethod


@MODELS.register_module()
class TextContextPrompt(PlaceholderCaptionMethod):
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
        if num_context < 1:
            raise ValueError(f'num_context must be >= 1, got {num_context}')
        super().__init__(num_context, class_specific, classes)
        self.num_context = num_context
        self.init_std = init_std

    def caption_entry(self, word, entry):
        return dict(entry,
                    prefix=self.placeholder_text + ' ' +
                    entry.get('prefix', ''))

    def attach(self, detector, adapter):
        self.adapter = adapter
        embeddings = adapter.text_input_embeddings(detector)
        self.attach_captions(detector)
        rows = len(self.classes) if self.class_specific else 1
        self.context = nn.Parameter(
            torch.randn(rows, self.num_context, embeddings.embedding_dim) *
            self.init_std)
        self._keep(embeddings.register_forward_hook(self._insert_context))
        return self

    def _insert_context(self, module, args, output):
        if not self.enabled:
            return None
        input_ids = args[0]
        runs = self.placeholder_runs(input_ids)
        if runs is None:
            return None
        is_context, index_in_run, row_class = runs
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

    def signature(self):
        return dict(
            super().signature(),
            num_context=self.num_context,
            class_specific=self.class_specific,
            num_classes=len(self.classes) if self.class_specific else None)
