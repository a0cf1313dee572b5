"""Detection on image files with a prompt-tuned detector, or with a prompt
bank (each image its task's prompts and classes).

The pieces are mmdet's: the config's test pipeline (its own
``LoadImageFromFile``, ``inference/images.py``), ``pseudo_collate``,
``model.test_step`` and ``DetLocalVisualizer``; what this adds is what a
folder of real images needs: bad files are skipped with the reason and the
run goes on, every output file is written whole (``utils/io.py``), outputs of
images with the same name do not overwrite each other, and a summary lists
what was skipped. Usage::

    from projects.sdpt.inference import PromptInferencer
    infer = PromptInferencer.from_files(
        'configs/demo/sdpt_gdino_tiny_demo.py',
        base_weights='data/demo/gdino_tiny_base.pth',
        prompt='work_dirs/sdpt_gdino_tiny_demo/iter_40.pth')
    summary = infer(['photos/', 'more/*.jpg'], out_dir='out', batch_size=4)

``tools/infer.py`` is the command line.
"""
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmdet.registry import VISUALIZERS
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from rich.console import Console
from rich.progress import Progress

from ..engine.config import load_config
from ..evaluation.diagnostics import method_disabled
from ..utils.io import atomic_write, atomic_write_json
from .images import (
    BadImage,
    Skipped,
    collect_images,
    read_image,
    split_test_pipeline,
)
from .loading import build_detector, load_weights
from .prompt_bank import PromptBank


class NoClassNamesError(ValueError):
    """Inference without class names to detect."""


def parse_class_names(texts) -> List[str]:
    """Class names from ``--texts``: a list of names, or one caption in
    mmdet's ``'bench . car .'`` form; blanks dropped."""
    if texts is None:
        return []
    if isinstance(texts, str):
        texts = [texts]
    names = []
    for text in texts:
        parts = text.split(' . ') if ' . ' in f' {text} ' else [text]
        names += [p.strip().strip('.').strip() for p in parts]
    return [n for n in names if n]


@dataclass
class InferenceSummary:
    """What a run did: ``processed`` image paths, ``skipped`` inputs with
    the reason, the number of ``detections`` kept and the output files."""
    processed: List[str] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    detections: int = 0
    seconds: float = 0.0
    outputs: Dict[str, str] = field(default_factory=dict)
    predictions: List[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(
            processed=len(self.processed),
            skipped=[dict(path=s.path, reason=s.reason) for s in self.skipped],
            detections=self.detections,
            seconds=round(self.seconds, 3),
            outputs=self.outputs)

    def format(self) -> str:
        lines = [f'{len(self.processed)} image(s) processed, '
                 f'{self.detections} detection(s) kept, '
                 f'{len(self.skipped)} skipped, {self.seconds:.1f} s']
        lines += [f'  skipped {s.path}: {s.reason}' for s in self.skipped]
        lines += [f'  {k}: {v}' for k, v in self.outputs.items()]
        return '\n'.join(lines)


class PromptInferencer:
    """Detect on image files with ``model`` (eval mode, weights loaded).

    Args:
        model: a detector built from ``cfg`` with its weights loaded.
        cfg: its config (test pipeline, visualizer).
        classes: the class names to detect (one task), or None with
            ``bank``.
        bank: a :class:`PromptBank` on ``model``; every input then names its
            task.
    """

    def __init__(self, model, cfg, classes: Optional[Sequence[str]] = None,
                 bank: Optional[PromptBank] = None):
        if bank is None:
            classes = list(classes or [])
            if not classes:
                raise NoClassNamesError(
                    'Empty class list: nothing to detect. Pass the class '
                    'names (--texts cat dog, or --texts "cat . dog").')
        self.model = model
        self.cfg = cfg
        self.classes = classes
        self.bank = bank
        self.loader, self.pipeline = split_test_pipeline(
            cfg.test_dataloader.dataset.pipeline)
        self.visualizer = None

    # ---- construction from files -------------------------------------------
    @classmethod
    def from_files(cls, config, *, base_weights=None, prompt=None,
                   checkpoint=None, texts=None, tasks=None, task_texts=None,
                   device='cpu', cfg_options=None,
                   allow_base_mismatch=False) -> 'PromptInferencer':
        """Build from a config path and weight files.

        One task: ``prompt`` (with ``base_weights``, default the config's) or
        a full ``checkpoint``; class names from ``texts``, else the prompt
        card's, else the config's test set. A bank: ``tasks``
        (``{name: prompt checkpoint}``) on ``base_weights``, each task's
        classes from ``task_texts[name]`` or its card.
        """
        cfg = load_config(config, cfg_options)
        if base_weights is None and not checkpoint:
            base_weights = cfg.get('base_weights')
        model = build_detector(cfg, device)
        if tasks:
            if prompt or checkpoint:
                raise ValueError('A bank (tasks) takes base weights and one '
                                 'prompt checkpoint per task, nothing else.')
            loaded = load_weights(model, base_weights=base_weights,
                                  for_bank=True)
            bank = PromptBank(model, fingerprint=loaded.fingerprint)
            for name, path in tasks.items():
                bank.add(name, path, classes=parse_class_names(
                    (task_texts or {}).get(name)) or None,
                    allow_base_mismatch=allow_base_mismatch)
            return cls(model, cfg, bank=bank)
        loaded = load_weights(model, base_weights=base_weights, prompt=prompt,
                              checkpoint=checkpoint,
                              allow_base_mismatch=allow_base_mismatch)
        classes = parse_class_names(texts)
        if texts is not None and not classes:
            raise NoClassNamesError(
                f'Empty class list: --texts {texts!r} names no class. Pass '
                f'the class names (--texts cat dog, or --texts "cat . dog").')
        if not classes and loaded.card:
            classes = list(loaded.card.get('classes') or [])
        if not classes:
            dataset = cfg.get('test_dataloader', {}).get('dataset', {})
            classes = list((dataset.get('metainfo') or {}).get('classes')
                           or [])
            if classes:
                print_log(
                    f'No class names given and {loaded.source} carries none: '
                    f'using the config\'s test classes {classes}.',
                    logger='current', level=30)
        return cls(model, cfg, classes=classes)

    # ---- running ----------------------------------------------------------
    def task_classes(self, task) -> List[str]:
        return self.bank.classes(task) if self.bank else self.classes

    def __call__(self, inputs: Sequence, out_dir: Optional[str] = None,
                 batch_size: int = 1, score_thr: float = 0.3,
                 save_vis: bool = True, save_json: bool = True,
                 coco: bool = False,
                 show_progress: bool = True) -> InferenceSummary:
        """Detect on ``inputs``: paths, folders or globs; with a bank,
        ``(task, path)`` pairs. Writes under ``out_dir`` (when given)
        ``vis/<image>.jpg`` (drawn detections), ``preds/<image>.json`` and,
        with ``coco``, ``results.bbox.json`` (COCO results) with
        ``results.images.json`` (its images and categories); always
        ``summary.json``. Detections below ``score_thr`` are dropped."""
        start = time.perf_counter()
        summary = InferenceSummary()
        items = self._collect(inputs, summary)
        if out_dir and save_vis and self.visualizer is None:
            self.visualizer = self._build_visualizer()
        names = _unique_stems([path for _, path in items])
        coco_results, coco_images = [], []
        categories = self._categories()
        pending = []
        with _progress(len(items), show_progress) as advance:
            for index, (task, path) in enumerate(items):
                try:
                    pending.append(self.prepare(index, task, path))
                except BadImage as err:
                    summary.skipped.append(Skipped(path, str(err)))
                    advance()
                if len(pending) == batch_size or (
                        index == len(items) - 1 and pending):
                    for entry, pred in zip(pending, self.forward(pending)):
                        record = self.record(entry, pred, score_thr)
                        summary.processed.append(entry['path'])
                        summary.detections += len(record['detections'])
                        summary.predictions.append(record)
                        name = names[entry['index']]
                        if out_dir and save_json:
                            atomic_write_json(
                                record, osp.join(out_dir, 'preds',
                                                 name + '.json'), indent=1)
                        if out_dir and save_vis:
                            self._write_drawing(
                                entry, pred, score_thr,
                                osp.join(out_dir, 'vis', name + '.jpg'))
                        if coco:
                            coco_images.append(dict(
                                id=entry['index'] + 1,
                                file_name=entry['path'],
                                width=record['width'],
                                height=record['height'],
                                task=entry['task']))
                            coco_results += _coco_detections(
                                entry, record, categories)
                        advance()
                    pending = []
        summary.seconds = time.perf_counter() - start
        if out_dir:
            if save_json:
                summary.outputs['per-image JSON'] = osp.join(out_dir, 'preds')
            if save_vis:
                summary.outputs['drawn images'] = osp.join(out_dir, 'vis')
            if coco:
                results = osp.join(out_dir, 'results.bbox.json')
                atomic_write_json(coco_results, results, indent=None)
                atomic_write_json(
                    dict(images=coco_images, categories=[
                        dict(id=i, name=name, task=task)
                        for (task, name), i in categories.items()]),
                    osp.join(out_dir, 'results.images.json'))
                summary.outputs['COCO results'] = results
            summary.outputs['summary'] = osp.join(out_dir, 'summary.json')
            atomic_write_json(summary.to_dict(),
                              summary.outputs['summary'], indent=1)
        return summary

    def _collect(self, inputs, summary) -> List[Tuple[Optional[str], str]]:
        items = []
        for item in inputs:
            task, path = item if isinstance(item, tuple) else (None, item)
            if self.bank is not None:
                if task is None:
                    raise ValueError(
                        f'{path}: with a prompt bank every input names its '
                        f'task (TASK=PATH); tasks: '
                        f'{", ".join(self.bank.tasks)}.')
                self.bank.classes(task)  # an unknown task: refused now
            files, skipped = collect_images([path])
            summary.skipped += skipped
            items += [(task, f) for f in files]
        return items

    # ---- one image at a time (the server batches these itself) -------------
    def prepare(self, index, task, path, classes=None,
                max_pixels: Optional[int] = None) -> dict:
        """Read ``path`` and run the test pipeline with the class names of
        ``task`` (or ``classes``, e.g. a zero-shot query): an entry for
        :meth:`forward`. :class:`BadImage` when the file cannot be used."""
        results = read_image(self.loader, path, max_pixels=max_pixels)
        image = results['img']
        classes = list(classes) if classes else self.task_classes(task)
        results.update(img_id=index, text=tuple(classes),
                       custom_entities=True)
        try:
            data = self.pipeline(results)
        except Exception as err:  # noqa: BLE001  (any transform may refuse)
            raise BadImage(f'the test pipeline refused it '
                           f'({type(err).__name__}: {err})') from None
        return dict(index=index, task=task, path=path, image=image,
                    classes=classes, data=data)

    def forward(self, entries, base: bool = False):
        """One forward of the prepared ``entries``: each with its task's
        prompts (a bank), or all with the method off (``base``)."""
        batch = pseudo_collate([entry['data'] for entry in entries])
        with torch.no_grad():
            if base:
                with method_disabled(self.model):
                    return self.model.test_step(batch)
            if self.bank is None:
                return self.model.test_step(batch)
            with self.bank.selecting([entry['task'] for entry in entries]):
                return self.model.test_step(batch)

    def record(self, entry, pred, score_thr) -> dict:
        """The detections of ``pred`` at or above ``score_thr`` as plain
        data: boxes x1 y1 x2 y2 in image pixels, scores, labels, names."""
        classes = entry['classes']
        instances = pred.pred_instances
        keep = instances.scores >= score_thr
        height, width = entry['image'].shape[:2]
        detections = [
            dict(bbox=[round(float(v), 2) for v in box],
                 score=round(float(score), 5),
                 label=int(label),
                 class_name=classes[int(label)])
            for box, score, label in zip(instances.bboxes[keep].tolist(),
                                         instances.scores[keep].tolist(),
                                         instances.labels[keep].tolist())
        ]
        return dict(image=entry['path'], task=entry['task'], width=width,
                    height=height, classes=list(classes),
                    score_threshold=score_thr, detections=detections)

    def draw(self, entry, pred, score_thr) -> np.ndarray:
        """The image with ``pred``'s detections drawn (mmdet's
        ``DetLocalVisualizer``), RGB."""
        if self.visualizer is None:
            self.visualizer = self._build_visualizer()
        self.visualizer.dataset_meta = dict(classes=tuple(entry['classes']),
                                            palette='random')
        rgb = np.ascontiguousarray(entry['image'][..., ::-1])
        self.visualizer.add_datasample(
            osp.basename(entry['path']), rgb, pred, draw_gt=False,
            show=False, pred_score_thr=score_thr)
        return self.visualizer.get_image()

    def _categories(self) -> Dict[Tuple[Optional[str], str], int]:
        """COCO category ids: 1..N over the classes (of every task, in
        task order, with a bank)."""
        pairs = [(None, c) for c in self.classes] if self.bank is None else [
            (task, c) for task in self.bank.tasks
            for c in self.bank.classes(task)]
        return {pair: i + 1 for i, pair in enumerate(pairs)}

    def _build_visualizer(self):
        cfg = dict(self.cfg.get('visualizer') or dict(
            type='DetLocalVisualizer'))
        # a fresh instance (mmengine keeps visualizers by name) that writes
        # nothing by itself: the drawn images are written here, atomically
        cfg.update(name=f'sdpt_infer_{id(self)}_{time.time_ns()}',
                   vis_backends=None, save_dir=None)
        return VISUALIZERS.build(cfg)

    def _write_drawing(self, entry, pred, score_thr, out_file):
        ok, encoded = cv2.imencode(
            '.jpg',
            np.ascontiguousarray(self.draw(entry, pred, score_thr)[..., ::-1]))
        if not ok:
            raise RuntimeError(f'could not encode the drawing of '
                               f'{entry["path"]}')
        atomic_write(out_file, encoded.tobytes())


def _coco_detections(entry, record, categories) -> List[dict]:
    return [
        dict(image_id=entry['index'] + 1,
             category_id=categories[(entry['task'], d['class_name'])],
             bbox=[d['bbox'][0], d['bbox'][1], d['bbox'][2] - d['bbox'][0],
                   d['bbox'][3] - d['bbox'][1]],
             score=d['score']) for d in record['detections']
    ]


def _unique_stems(paths: Sequence[str]) -> List[str]:
    """Output names: each file's name without suffix, with ``_2``, ``_3``...
    where an earlier file (from another folder) took the name."""
    taken, names = set(), []
    for path in paths:
        base = osp.splitext(osp.basename(path))[0] or 'image'
        stem, count = base, 1
        while stem in taken:
            count += 1
            stem = f'{base}_{count}'
        taken.add(stem)
        names.append(stem)
    return names


class _progress:
    """A rich progress bar on stderr (rich comes with mmengine, and mmdet's
    DetInferencer uses it too); a no-op when switched off."""

    def __init__(self, total, enabled):
        self.total, self.enabled = total, enabled

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        self.progress = Progress(console=Console(stderr=True))
        self.progress.start()
        task = self.progress.add_task('Inference', total=self.total)
        return lambda: self.progress.advance(task)

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.stop()
        return False
