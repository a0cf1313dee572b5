"""Captions with placeholder tokens around or instead of the class names.

The text methods that learn vectors per caption position (CoOp's context,
the learned class features) make the detector build its class-name caption
with runs of placeholder tokens, through mmdet's own mechanism for enhanced
prompts (``to_enhance_text_prompts``: a ``prefix`` before a name, or a
``name`` that replaces it), so that class spans, positive maps and text
masks are computed by mmdet on the real caption. The placeholder is the
tokenizer's mask token: a single token in every BERT vocabulary, never split
and never lower-cased.

:class:`PlaceholderCaptionMethod` owns that caption rewrite and finds, for a
batch of token ids, each placeholder's index in its run and the class of the
run; a method says only what it puts into the caption
(:meth:`~PlaceholderCaptionMethod.caption_entry`) and what it does with the
placeholder positions.
"""
import re
from typing import Dict, List, Optional, Sequence

import torch
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


class PlaceholderCaptionMethod(PromptMethod):
    """A method that rewrites class-name captions around runs of
    ``num_placeholders`` placeholder tokens.

    Args:
        num_placeholders (int): tokens per run.
        class_specific (bool): whether each run's class is needed (then
            ``classes`` is required).
        classes (Sequence[str], optional): the dataset's class names, in
            order.
        other_classes (str): a caption's class outside ``classes``, when
            class-specific: ``'error'``, or ``'base'`` (it keeps its name,
            so the base detector's features: tuned and typed classes mix).
    """

    def __init__(self, num_placeholders: int, class_specific: bool,
                 classes: Optional[Sequence[str]],
                 other_classes: str = 'error'):
        super().__init__()
        if other_classes not in ('error', 'base'):
            raise ValueError(f"other_classes={other_classes!r}: 'error' or "
                             f"'base'")
        self.other_classes = other_classes
        if class_specific and not classes:
            raise ValueError(
                f'{type(self).__name__} with one set of vectors per class '
                "needs classes=<the dataset's class names, in order>; in a "
                'config, classes=None takes the training set\'s (tools/'
                'train.py and tools/test.py fill it in).')
        self.num_placeholders = num_placeholders
        self.class_specific = class_specific
        self.classes = list(classes) if classes else None
        self._class_index = ({
            clean_class_name(name): i
            for i, name in enumerate(self.classes)
        } if self.classes else {})
        # caption string -> class index of each placeholder run
        self._caption_classes: Dict[str, List[int]] = {}
        self._captions: List[str] = []

    def caption_entry(self, word: str, entry: dict) -> dict:
        """The enhanced-prompt entry (``prefix`` / ``name`` / ``suffix``) of
        class name ``word`` with the placeholders in, from the user's own
        ``entry`` for it (empty when none)."""
        raise NotImplementedError

    def attach_captions(self, detector) -> None:
        """Make ``detector`` build its class captions with the placeholders
        (while the method is enabled) and remember each batch's captions."""
        language_model = detector.language_model
        tokenizer = language_model.tokenizer
        if tokenizer.mask_token_id is None:
            raise ValueError(
                f'The text encoder tokenizer ({type(tokenizer).__name__}) has '
                f'no mask token to hold the {type(self).__name__} positions.')
        self.placeholder_id = tokenizer.mask_token_id
        self.placeholder_text = ' '.join([tokenizer.mask_token] *
                                         self.num_placeholders)
        build_enhanced = detector.to_enhance_text_prompts
        for name in CAPTION_BUILDERS:
            original = getattr(detector, name)
            self._keep(
                ReplacedMethod(detector, name,
                               self._caption_builder(original,
                                                     build_enhanced)))
        self._keep(
            language_model.register_forward_pre_hook(self._remember_captions))

    def _caption_builder(self, original, build_enhanced):

        def build(original_caption, enhanced_text_prompts=None):
            if not self.enabled:
                if enhanced_text_prompts is None:
                    return original(original_caption)
                return original(original_caption, enhanced_text_prompts)
            merged, run_classes = {}, []
            for word in original_caption:
                entry = dict((enhanced_text_prompts or {}).get(word, {}))
                if self.class_specific:
                    index = self._class_of(word)
                    if index is None:  # as the base has it
                        if entry:
                            merged[word] = entry
                        continue
                    run_classes.append(index)
                merged[word] = self.caption_entry(word, entry)
            caption, tokens_positive = build_enhanced(original_caption,
                                                      merged)
            if self.class_specific:
                self._caption_classes[caption] = run_classes
            return caption, tokens_positive

        return build

    def _class_of(self, word: str) -> Optional[int]:
        """The index of class ``word`` in ``classes``; None for another
        class when ``other_classes='base'``."""
        if word in self._class_index:
            return self._class_index[word]
        if self.other_classes == 'base':
            return None
        raise KeyError(
            f'Class name {word!r} in the caption is not in prompt.classes '
            f"{self.classes}; set prompt.classes to the dataset's class "
            f'names, in order.')

    def _remember_captions(self, module, args):
        captions = args[0] if args else []
        self._captions = [captions] if isinstance(captions,
                                                  str) else list(captions)

    def placeholder_runs(self, input_ids: Tensor):
        """``(is_placeholder, index_in_run, run_class)`` of a batch of token
        ids, all (B, L); ``run_class`` is the class of the run a position is
        in (0 when not class-specific, and off the placeholders); ``None``
        when the batch holds no placeholder."""
        is_context, index_in_run, run_index = context_positions(
            input_ids, self.placeholder_id)
        if not bool(is_context.any()):
            return None
        if int(index_in_run[is_context].max()) >= self.num_placeholders:
            raise ValueError(
                f'A caption holds more than {self.num_placeholders} '
                f'consecutive {self.placeholder_text.split()[0]} tokens: '
                f'class names must not contain the placeholder token.')
        if self.class_specific:
            run_class = self._run_classes(run_index, is_context)
        else:
            run_class = torch.zeros_like(run_index)
        return (is_context, index_in_run.clamp(0, self.num_placeholders - 1),
                run_class.clamp(min=0))

    def _run_classes(self, run_index: Tensor, is_context: Tensor) -> Tensor:
        """(B, L) class index of the placeholder run each position is in."""
        if len(self._captions) != run_index.shape[0]:
            raise RuntimeError(
                f'{type(self).__name__}: the text encoder was called without '
                f'the captions of this batch.')
        classes = torch.zeros_like(run_index)
        for row, caption in enumerate(self._captions):
            try:
                run_classes = self._caption_classes[caption]
            except KeyError:
                raise RuntimeError(
                    f'{type(self).__name__} with one set of vectors per '
                    f'class got a caption that was not built from class '
                    f'names; it needs class-name prompts.') from None
            table = run_index.new_tensor(run_classes)
            runs = run_index[row].clamp(0, len(run_classes) - 1)
            classes[row] = torch.where(is_context[row], table[runs],
                                       torch.zeros_like(runs))
        return classes
