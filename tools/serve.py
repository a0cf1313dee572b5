"""Serve a prompt bank on a web page: one frozen base, many tuned tasks.

    python tools/serve.py CONFIG --task NAME=PROMPT.pth [--task ...]
        [--task-texts NAME=a,b,c] [--base-weights BASE.pth]
        [--host 127.0.0.1] [--port 7860] [--max-batch-images 8]
        [--max-batch-requests 8] [--queue-size 64] [--max-file-size 20mb]

The page (Gradio): choose a task (its prompt card is shown) or zero-shot
with typed class names, drop images, set a score threshold; each image is
shown as detected by the base detector and by the task's tuned prompts, side
by side, with the detections as JSON to read or download. Requests that
arrive together run in shared forwards of the bank, images of different
tasks in one batch (docs/serving.md). Bad uploads (not an image, truncated,
empty, too large) are reported on the page; the server keeps serving.

Needs the optional serving requirements: pip install -r
requirements-serve.txt. Every task must be tuned with the same method on
the same base weights, a method that serves mixed-task batches (SDPT, CoOp
text prompts, independent dual prompts).
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from projects.sdpt.cli import (
    add_bank_arguments,
    import_optional,
    parse_tasks,
    user_errors,
)
from projects.sdpt.inference import PromptInferencer
from projects.sdpt.inference.prompt_bank import PromptBankError
from projects.sdpt.serving.service import (
    DEFAULT_MAX_PIXELS,
    BankService,
    ServiceError,
)

app_module = import_optional('projects.sdpt.serving.app', 'tools/serve.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config')
    add_bank_arguments(parser, 'a task: its prompt checkpoint (repeat)',
                       tasks_required=True)
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (0.0.0.0: every '
                        'interface)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--max-batch-images', type=int, default=8,
                        help='the most images in one forward')
    parser.add_argument('--max-batch-requests', type=int, default=8,
                        help='the most waiting requests run together')
    parser.add_argument('--queue-size', type=int, default=64,
                        help='the most requests waiting; more are refused')
    parser.add_argument('--max-file-size', default='20mb',
                        help='the largest upload (Gradio refuses more)')
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='the largest image, in pixels')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    tasks, task_texts = parse_tasks(args.task, args.task_texts)
    try:
        with user_errors():
            inferencer = PromptInferencer.from_files(
                args.config, base_weights=args.base_weights, tasks=tasks,
                task_texts=task_texts, device=args.device,
                cfg_options=args.cfg_options,
                allow_base_mismatch=args.allow_base_mismatch)
            service = BankService(inferencer,
                                  max_batch_images=args.max_batch_images,
                                  max_pixels=args.max_pixels)
    except (PromptBankError, ServiceError, FileNotFoundError,
            ValueError) as err:
        raise SystemExit(f'{type(err).__name__}: {err}') from None
    app = app_module.build_app(service, queue_size=args.queue_size,
                    max_batch_requests=args.max_batch_requests)
    print(f'serving {len(service.tasks)} task(s) '
          f'({", ".join(service.tasks)}) on base {service.fingerprint}: '
          f'http://{args.host}:{args.port}', flush=True)
    app.launch(server_name=args.host, server_port=args.port,
               max_file_size=args.max_file_size, show_error=True,
               allowed_paths=[app.sdpt_out_dir], quiet=True,
               show_api=True, ssr_mode=False)
    return 0


if __name__ == '__main__':
    sys.exit(main())
