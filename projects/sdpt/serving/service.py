"""Detection requests against a prompt bank, batched across requests.

A request is a few images and what to detect in them: a task of the bank
(its prompts and classes) or zero-shot class names. Every image is detected
twice, by the base detector (the prompt method switched off, the task's
classes) and, for a task, with the task's prompts, so the two can be shown
side by side.

:meth:`BankService.detect` takes the requests that arrived together and runs
their images in as few forwards as it can: the tuned images of every task in
one forward of the bank (a mixed-task batch), the base images in another.
Images are only batched with images of the same input size: padding a
smaller image to a larger one's size changes its result, and a request's
result must not depend on what else arrived with it. A forward holds at most
``max_batch_images`` images.
"""
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..checkpoint.prompt_checkpoint import base_fingerprint
from ..inference.images import BadImage, Skipped
from ..inference.inferencer import PromptInferencer

#: The largest image taken (pixels): 40 MP, e.g. 8000 x 5000.
DEFAULT_MAX_PIXELS = 40_000_000


class ServiceError(ValueError):
    """A request the service cannot run (the message says why)."""


@dataclass
class DetectionRequest:
    """``images`` (file paths) with a bank ``task``, or with ``task`` None
    and zero-shot ``classes``; detections below ``score_thr`` dropped."""
    images: Sequence[str]
    task: Optional[str] = None
    classes: Sequence[str] = ()
    score_thr: float = 0.3
    names: Optional[Sequence[str]] = None  # shown names (uploads' own)


@dataclass
class ImageResult:
    name: str
    base: dict
    tuned: Optional[dict]
    base_drawing: Optional[np.ndarray] = None
    tuned_drawing: Optional[np.ndarray] = None


@dataclass
class DetectionResponse:
    results: List[ImageResult] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(
            images=[dict(name=r.name, base=r.base, tuned=r.tuned)
                    for r in self.results],
            skipped=[dict(name=s.path, reason=s.reason)
                     for s in self.skipped])

    def to_coco(self, detector: str) -> dict:
        """The ``detector``'s ('base' or 'tuned') detections as COCO:
        ``images``, ``categories`` (the request's classes) and
        ``annotations`` in COCO's results form (x, y, w, h)."""
        records = [getattr(r, detector) for r in self.results]
        records = [r for r in records if r is not None]
        classes = records[0]['classes'] if records else []
        return dict(
            images=[dict(id=i + 1, file_name=r['image'], width=r['width'],
                         height=r['height'])
                    for i, r in enumerate(records)],
            categories=[dict(id=i + 1, name=c)
                        for i, c in enumerate(classes)],
            annotations=[
                dict(image_id=i + 1, category_id=d['label'] + 1,
                     bbox=[d['bbox'][0], d['bbox'][1],
                           round(d['bbox'][2] - d['bbox'][0], 2),
                           round(d['bbox'][3] - d['bbox'][1], 2)],
                     score=d['score'])
                for i, r in enumerate(records) for d in r['detections']])


@dataclass
class ServiceStats:
    """Counters since the start: requests, images, forwards (a base and a
    tuned forward count one each) and the images they held."""
    requests: int = 0
    images: int = 0
    skipped: int = 0
    calls: int = 0
    forwards: int = 0
    forward_images: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__, images_per_forward=round(
            self.forward_images / self.forwards, 3) if self.forwards else 0)


class BankService:
    """Serve the tasks of a prompt bank (``inferencer.bank``) and zero-shot
    queries on its base, one call at a time (a lock: the detector is one
    instance).

    Args:
        inferencer: a :class:`PromptInferencer` over a prompt bank.
        max_batch_images: the most images in one forward.
        max_pixels: larger images are refused with a message.
        draw: also return the drawn images (base and tuned).
    """

    ZERO_SHOT = 'zero-shot'

    def __init__(self, inferencer: PromptInferencer,
                 max_batch_images: int = 8,
                 max_pixels: int = DEFAULT_MAX_PIXELS, draw: bool = True):
        if inferencer.bank is None:
            raise ServiceError('The service serves a prompt bank: build the '
                               'inferencer with tasks.')
        if max_batch_images < 1:
            raise ServiceError('max_batch_images must be at least 1.')
        self.inferencer = inferencer
        self.bank = inferencer.bank
        self.max_batch_images = max_batch_images
        self.max_pixels = max_pixels
        self.draw = draw
        self.stats = ServiceStats()
        self.fingerprint = self.bank.fingerprint or base_fingerprint(
            inferencer.model)
        self._lock = threading.Lock()

    @property
    def tasks(self) -> List[str]:
        return list(self.bank.tasks)

    def card(self, task: str) -> dict:
        """What the page shows of ``task``: its prompt card's fields."""
        entry = self.bank.tasks.get(task)
        if entry is None:
            raise ServiceError(f'No task {task!r} (tasks: '
                               f'{", ".join(self.tasks)}).')
        card = dict(entry.card or {})
        return dict(
            task=task,
            method=type(self.bank.method).__name__,
            checkpoint=entry.source,
            classes=list(entry.classes),
            base_fingerprint=card.get('base_fingerprint'),
            metrics=card.get('metrics') or {},
            trainable=card.get('trainable'),
            total=card.get('total'),
            iteration=card.get('iter'))

    # ---- detection ---------------------------------------------------------
    def detect(self, requests: Sequence[DetectionRequest]
               ) -> List[DetectionResponse]:
        """Detect on every image of ``requests`` (module docstring): one
        response per request, in order. A request naming an unknown task or
        no zero-shot classes raises :class:`ServiceError` before anything
        runs; an image that cannot be used is skipped with the reason."""
        for request in requests:
            self.check(request)
        with self._lock:
            start = time.perf_counter()
            responses = [DetectionResponse() for _ in requests]
            entries = self._prepare(requests, responses)
            tuned = [e for e in entries if e['task'] is not None]
            tuned_preds = self._run(tuned, base=False)
            base_preds = self._run(entries, base=True)
            for entry in entries:
                request = requests[entry['request']]
                thr = request.score_thr
                base_pred = base_preds[id(entry)]
                tuned_pred = tuned_preds.get(id(entry))
                result = ImageResult(
                    name=entry['name'],
                    base=self._record(entry, base_pred, thr, 'base'),
                    tuned=None if tuned_pred is None else
                    self._record(entry, tuned_pred, thr, 'tuned'))
                if self.draw:
                    result.base_drawing = self.inferencer.draw(
                        entry, base_pred, thr)
                    if tuned_pred is not None:
                        result.tuned_drawing = self.inferencer.draw(
                            entry, tuned_pred, thr)
                responses[entry['request']].results.append(result)
            self.stats.calls += 1
            self.stats.requests += len(requests)
            self.stats.images += len(entries)
            self.stats.skipped += sum(len(r.skipped) for r in responses)
            self.stats.seconds += time.perf_counter() - start
        return responses

    def check(self, request: DetectionRequest) -> None:
        """Raise :class:`ServiceError` when ``request`` cannot run."""
        if request.task is not None:
            if request.task not in self.bank.tasks:
                raise ServiceError(
                    f'No task {request.task!r} (tasks: '
                    f'{", ".join(self.tasks)}; or {self.ZERO_SHOT!r} with '
                    f'class names).')
        elif not [c for c in request.classes if str(c).strip()]:
            raise ServiceError(
                'Zero-shot needs class names: type them as "cat . dog" or '
                '"cat, dog".')
        if not 0 <= request.score_thr <= 1:
            raise ServiceError(f'score threshold {request.score_thr}: give '
                               f'a value from 0 to 1.')

    def _prepare(self, requests, responses) -> List[dict]:
        entries = []
        for number, request in enumerate(requests):
            names = list(request.names or request.images)
            for path, name in zip(request.images, names):
                try:
                    entry = self.inferencer.prepare(
                        len(entries), request.task, path,
                        classes=None if request.task else request.classes,
                        max_pixels=self.max_pixels)
                except BadImage as err:
                    responses[number].skipped.append(Skipped(name, str(err)))
                    continue
                entry.update(request=number, name=name)
                entries.append(entry)
        return entries

    def _record(self, entry, pred, score_thr, detector) -> dict:
        # the upload's own name, not the server's temporary path
        return dict(self.inferencer.record(entry, pred, score_thr),
                    image=entry['name'], detector=detector)

    def _run(self, entries, base: bool) -> Dict[int, object]:
        """Predictions by ``id(entry)``: forwards of same-size images, at
        most ``max_batch_images`` each."""
        groups = defaultdict(list)
        for entry in entries:
            groups[tuple(entry['data']['inputs'].shape)].append(entry)
        preds = {}
        for group in groups.values():
            for start in range(0, len(group), self.max_batch_images):
                chunk = group[start:start + self.max_batch_images]
                for entry, pred in zip(chunk, self.inferencer.forward(
                        chunk, base=base)):
                    preds[id(entry)] = pred
                self.stats.forwards += 1
                self.stats.forward_images += len(chunk)
        return preds
