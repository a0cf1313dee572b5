"""Training with class lists longer than the text encoder's token limit.

At test time mmdet splits a long class list into chunks
(``test_cfg.chunked_size``, GLIP and Grounding DINO). Training has no such
path: mmdet's GLIP / Grounding DINO ``loss`` builds one caption from the whole
list, and with LVIS's 1203 classes it far exceeds the 256 tokens BERT reads.
``ClassSubsetPrompt`` does what GLIP does for such data: each training image
gets a caption of its own positive classes plus randomly drawn negatives,
as many as fit ``max_tokens``, and its labels are renumbered to that list.
"""
import random
import warnings

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.models.detectors.glip import clean_label_name
from mmdet.registry import TRANSFORMS
from transformers import AutoTokenizer


@TRANSFORMS.register_module()
class ClassSubsetPrompt(BaseTransform):
    """Reduce ``results['text']`` (all class names) to what fits the encoder.

    Args:
        tokenizer (str): name or path of the detector's tokenizer (the
            language model's ``name``), used to count tokens.
        max_tokens (int): the text encoder's limit (mmdet's BertModel: 256).
        num_negatives (int, optional): at most this many negatives; default
            as many as fit.
        shuffle (bool): shuffle the kept classes (GLIP does), so no class
            sits at a fixed position of the caption.

    Counting follows mmdet's plain prompt (``"name1. name2. "``: the
    cleaned name, then ``"."``) plus [CLS] and [SEP]. Positives always stay;
    if they alone do not fit, the image's boxes of the classes that overflow
    are dropped and a warning names them. Uses Python's ``random`` (seeded
    by mmengine's ``randomness``).
    """

    def __init__(self, tokenizer, max_tokens=256, num_negatives=None,
                 shuffle=True):
        self.tokenizer_name = tokenizer
        self.max_tokens = max_tokens
        self.num_negatives = num_negatives
        self.shuffle = shuffle
        self._tokenizer = None
        self._cost = {}

    def cost(self, name):
        """Tokens the class name takes in mmdet's plain prompt."""
        if name not in self._cost:
            if self._tokenizer is None:
                self._tokenizer = AutoTokenizer.from_pretrained(
                    self.tokenizer_name)
            self._cost[name] = len(
                self._tokenizer.tokenize(clean_label_name(name))) + 1
        return self._cost[name]

    def transform(self, results):
        classes = list(results['text'])
        labels = np.asarray(results['gt_bboxes_labels'], dtype=np.int64)
        budget = self.max_tokens - 2  # [CLS], [SEP]
        positives, dropped = [], []
        for label in dict.fromkeys(labels.tolist()):  # first-seen order
            if self.cost(classes[label]) <= budget:
                positives.append(label)
                budget -= self.cost(classes[label])
            else:
                dropped.append(label)
        if dropped:
            warnings.warn(
                'ClassSubsetPrompt: the positive classes of '
                f'{results.get("img_path")} do not fit {self.max_tokens} '
                'tokens; boxes of '
                + ', '.join(classes[i] for i in dropped) + ' are dropped')
        negatives = [i for i in range(len(classes)) if i not in positives
                     and i not in dropped]
        random.shuffle(negatives)
        kept_negatives = []
        for i in negatives:
            if (self.num_negatives is not None
                    and len(kept_negatives) >= self.num_negatives):
                break
            if self.cost(classes[i]) <= budget:
                kept_negatives.append(i)
                budget -= self.cost(classes[i])
        kept = positives + kept_negatives
        if self.shuffle:
            random.shuffle(kept)
        remap = {old: new for new, old in enumerate(kept)}
        keep_box = np.array([lb in remap for lb in labels.tolist()],
                            dtype=bool)
        if not keep_box.all():
            results['gt_bboxes'] = results['gt_bboxes'][keep_box]
            if 'gt_ignore_flags' in results:
                results['gt_ignore_flags'] = \
                    results['gt_ignore_flags'][keep_box]
            labels = labels[keep_box]
        results['gt_bboxes_labels'] = np.array(
            [remap[lb] for lb in labels.tolist()], dtype=np.int64)
        results['text'] = tuple(classes[i] for i in kept)
        results['custom_entities'] = True
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(tokenizer={self.tokenizer_name!r}'
                f', max_tokens={self.max_tokens}, '
                f'num_negatives={self.num_negatives}, shuffle={self.shuffle})')
