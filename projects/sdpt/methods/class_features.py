"""Learned class features: mmdet's prompt tuning for Grounding DINO
(``projects/GroundingdinoPT``, Chen et al. 2023), on GLIP and Grounding DINO.

Each class gets M learned vectors in the text encoder's *output* space that
take the place of its name: the detector builds its caption with M
placeholder tokens where each class name was ("[MASK] x M. [MASK] x M."),
the class spans cover the placeholders (mmdet's enhanced-prompt ``name``),
and after the text encoder the features of each class's M placeholder
positions are replaced by that class's vectors, before the detector reads
them (Grounding DINO: ``embedded`` into ``text_feat_map``; GLIP: ``hidden``
for the fusion and ``embedded`` for the head, both replaced). The label
names stay the class names, so predictions read as the base's do. A class
outside the list keeps its name, and so the base's features for it: tuned
classes and typed ones mix in one caption (as mmdet's project lets a prompt
file and typed texts be used together).

Differences from mmdet's project, on purpose: the placeholder is the mask
token, not the word "a"; the detector is wrapped, not subclassed, so the
denoising queries' label embedding (which mmdet's project also trains) stays
frozen and only the vectors train; the vectors are keyed by the class list
(``classes``) rather than by position alone, so a caption of other classes
gets the base's features rather than another class's vectors.

Example::

    prompt = dict(type='LearnedClassFeatures', num_tokens=4,
                  classes=('circle', 'square'))

Parameters: ``features`` of shape (num_classes, M, text width), drawn from
N(0, init_std) (mmdet's project: ``nn.Embedding``'s N(0, 1)). The prompt
checkpoint holds only them; ``tools/export_class_features.py`` writes them
one file per class, the form mmdet's project serves them in.
"""
from typing import Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS

from .placeholder_captions import PlaceholderCaptionMethod


@MODELS.register_module()
class LearnedClassFeatures(PlaceholderCaptionMethod):
    """M learned text features per class in place of the class name.

    Args:
        classes (Sequence[str]): the dataset's class names, in order
            (``None`` in a config: the training set's, filled in by
            ``load_config``).
        num_tokens (int): M vectors per class (mmdet: ``prompt_length``).
        init_std (float): vectors start as N(0, init_std).
    """

    mixed_task_refusal = ('its vectors belong to the classes of one class '
                          'list')

    def __init__(self,
                 classes: Sequence[str],
                 num_tokens: int = 4,
                 init_std: float = 1.0):
        if num_tokens < 1:
            raise ValueError(f'num_tokens must be >= 1, got {num_tokens}')
        super().__init__(num_tokens, True, classes, other_classes='base')
        self.num_tokens = num_tokens
        self.init_std = init_std

    def caption_entry(self, word, entry):
        return dict(entry, name=self.placeholder_text)

    def attach(self, detector, adapter):
        self.adapter = adapter
        encoder = adapter.text_encoder(detector)
        self.attach_captions(detector)
        self.features = nn.Parameter(
            torch.randn(len(self.classes), self.num_tokens,
                        adapter.text_width(detector)) * self.init_std)
        self._keep(encoder.register_forward_hook(self._replace_features))
        return self

    def _replace_features(self, module, args, output):
        if not self.enabled:
            return None
        runs = self.placeholder_runs(args[0]['input_ids'])
        if runs is None:
            return None
        is_placeholder, index_in_run, run_class = runs
        replaced = dict(output)
        for key in ('embedded', 'hidden'):
            features = output[key]
            learned = self.features.to(features.dtype)[run_class,
                                                       index_in_run]
            replaced[key] = torch.where(is_placeholder.unsqueeze(-1),
                                        learned, features)
        # Returned, this replaces the encoder's output dict.
        return replaced

    def signature(self):
        # the vectors are keyed by the class list: another list is another
        # method, refused by name on load
        return dict(super().signature(), num_tokens=self.num_tokens,
                    classes=list(self.classes))

