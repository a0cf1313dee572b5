"""The prompt bank's web page (Gradio): pick a task or type class names,
drop images, see the base detector and the tuned prompts side by side.

Requests that wait in Gradio's queue together reach :func:`detect_batch`
as one batch (``batch=True``), so the images of several users' requests
share the bank's forwards (``service.py``); the queue is bounded
(``queue_size``): beyond it a request is turned away with Gradio's "queue
full" message instead of waiting without end. ``tools/serve.py`` starts it.
"""
import json
import os.path as osp
import tempfile
import uuid
from typing import List, Sequence, Tuple

import gradio as gr

from ..inference.inferencer import parse_class_names
from ..utils.io import atomic_write
from .service import BankService, DetectionRequest, ServiceError

API_NAME = 'detect'


def typed_classes(text: str) -> List[str]:
    """Class names typed on the page: ``cat . dog`` or ``cat, dog``."""
    text = (text or '').strip()
    if ',' in text:
        return [c.strip() for c in text.split(',') if c.strip()]
    return parse_class_names(text)


def card_markdown(service: BankService, task: str) -> str:
    """The prompt card of ``task`` as a small table (or what zero-shot
    does)."""
    if task == BankService.ZERO_SHOT or not task:
        return ('**Zero-shot**: the base detector alone, with the class '
                'names you type. Base weights fingerprint '
                f'`{service.fingerprint}`.')
    card = service.card(task)
    metrics = ', '.join(
        f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
        for k, v in card['metrics'].items()) or 'none recorded'
    trainable = (f'{card["trainable"]:,} of {card["total"]:,}'
                 if card['trainable'] is not None else 'not recorded')
    rows = [('method', card['method']),
            ('classes', ', '.join(card['classes'])),
            ('base fingerprint', f'`{card["base_fingerprint"]}`'
             if card['base_fingerprint'] else 'not recorded'),
            ('metrics', metrics),
            ('trainable parameters', trainable),
            ('checkpoint', f'`{osp.basename(card["checkpoint"])}`')]
    return '\n'.join([f'**Task `{task}`**', ''] +
                     [f'- **{k}**: {v}' for k, v in rows])


def _files(value) -> List[str]:
    if not value:
        return []
    if isinstance(value, (str, bytes)):
        return [value]
    return [getattr(f, 'name', f) for f in value]


def _write(path: str, text: str) -> str:
    atomic_write(path, text.encode())
    return path


def _gallery(response) -> List[Tuple]:
    items = []
    for result in response.results:
        items.append((result.base_drawing,
                      f'{result.name}: base ({len(result.base["detections"])}'
                      f' detections)'))
        if result.tuned is not None:
            items.append((result.tuned_drawing,
                          f'{result.name}: tuned, task {result.tuned["task"]}'
                          f' ({len(result.tuned["detections"])} detections)'))
    return items


def _messages(response, error=None) -> str:
    if error:
        return f'**Not run:** {error}'
    lines = [f'{len(response.results)} image(s) detected.']
    lines += [f'- skipped `{s.path}`: {s.reason}' for s in response.skipped]
    return '\n'.join(lines)


def build_app(service: BankService, *, queue_size: int = 64,
              max_batch_requests: int = 8,
              title: str = 'Prompt bank') -> gr.Blocks:
    """The page over ``service``; up to ``max_batch_requests`` waiting
    requests are run together, up to ``queue_size`` wait."""
    out_dir = tempfile.mkdtemp(prefix='sdpt_serve_')
    choices = service.tasks + [BankService.ZERO_SHOT]

    def detect_batch(tasks: Sequence[str], texts: Sequence[str],
                     uploads: Sequence, thresholds: Sequence[float]):
        requests, errors = [], []
        for task, text, files, thr in zip(tasks, texts, uploads, thresholds):
            paths = _files(files)
            request = DetectionRequest(
                images=paths, names=[osp.basename(p) for p in paths],
                task=None if task == BankService.ZERO_SHOT else task,
                classes=typed_classes(text), score_thr=float(thr))
            error = None
            if not paths:
                error = 'no images: drop one or more image files.'
            else:
                try:
                    service.check(request)
                except ServiceError as err:
                    error = str(err)
            requests.append(request)
            errors.append(error)
        runnable = [r for r, e in zip(requests, errors) if e is None]
        answers = iter(service.detect(runnable) if runnable else [])
        galleries, messages, payloads, downloads = [], [], [], []
        for request, error in zip(requests, errors):
            if error is not None:
                galleries.append([])
                messages.append(_messages(None, error))
                payloads.append(json.dumps(dict(error=error)))
                downloads.append(None)
                continue
            response = next(answers)
            payload = dict(task=request.task or BankService.ZERO_SHOT,
                           **response.to_dict())
            text = json.dumps(payload, indent=1)
            folder = osp.join(out_dir, uuid.uuid4().hex)
            files = [_write(osp.join(folder, 'detections.json'), text)]
            for detector in ('base', 'tuned'):
                coco = response.to_coco(detector)
                if coco['images']:
                    files.append(_write(
                        osp.join(folder, f'coco_{detector}.json'),
                        json.dumps(coco)))
            galleries.append(_gallery(response))
            messages.append(_messages(response))
            payloads.append(text)
            downloads.append(files)
        return galleries, messages, payloads, downloads

    # system fonts: the page must not wait on a font server
    theme = gr.themes.Default(font=['ui-sans-serif', 'system-ui',
                                    'sans-serif'],
                              font_mono=['ui-monospace', 'monospace'])
    with gr.Blocks(title=title, theme=theme, analytics_enabled=False) as app:
        gr.Markdown(f'# {title}\nOne frozen base detector, '
                    f'{len(service.tasks)} task(s) of tuned prompts. Pick a '
                    'task (or zero-shot with your class names), drop images '
                    'and compare the base with the tuned prompts.')
        with gr.Row():
            task = gr.Dropdown(choices, value=choices[0], label='Task',
                               elem_id='task')
            classes = gr.Textbox(label='Class names (zero-shot)',
                                 placeholder='cat . dog   or   cat, dog',
                                 elem_id='classes')
            score_thr = gr.Slider(0, 1, value=0.3, step=0.01,
                                  label='Score threshold',
                                  elem_id='score-thr')
        card = gr.Markdown(card_markdown(service, choices[0]),
                           elem_id='card')
        images = gr.File(label='Images', file_count='multiple',
                         type='filepath', elem_id='images')
        run = gr.Button('Detect', variant='primary', elem_id='detect')
        messages = gr.Markdown(elem_id='messages')
        # an even number of columns: each image's base drawing, then its
        # tuned one, side by side, two images a row
        gallery = gr.Gallery(label='Base | tuned', columns=4,
                             elem_id='gallery', height=640,
                             object_fit='contain')
        with gr.Accordion('Detections (JSON)', open=False):
            payload = gr.Textbox(label='JSON', lines=8, max_lines=30,
                                 elem_id='results-json')
            download = gr.File(label='Download (JSON, COCO results)',
                               file_count='multiple', elem_id='download')
        task.change(lambda t: card_markdown(service, t), task, card,
                    api_name=False, queue=False)
        run.click(detect_batch, [task, classes, images, score_thr],
                  [gallery, messages, payload, download],
                  api_name=API_NAME, batch=True,
                  max_batch_size=max_batch_requests, concurrency_limit=1)

        def stats() -> dict:
            """The service's counters: requests, images, forwards and the
            images they held (the batching at work)."""
            return service.stats.to_dict()

        gr.api(stats, api_name='stats', queue=False)
    app.queue(max_size=queue_size)
    app.sdpt_out_dir = out_dir
    return app
