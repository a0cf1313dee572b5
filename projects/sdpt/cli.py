"""What the command-line tools share: work directories, CPU distributed
runs, missing weights, the training data check, a prompt card as text, and
the project's known failures as one clear message."""
import contextlib
import importlib
import os
import os.path as osp
import urllib.error

import torch
import torch.distributed as dist
from mmdet.utils import setup_cache_size_limit_of_dynamo
from mmengine.config import DictAction
from mmengine.logging import MMLogger

from .checkpoint.prompt_checkpoint import RECORD_ONLY, PromptCheckpointMismatch
from .checkpoint.safe_loading import (
    CorruptCheckpointError,
    UntrustedCheckpointError,
)
from .datasets.data_check import DataCheckError, check_train_data
from .engine.config import load_config
from .engine.hooks import NonFiniteLossError
from .engine.hooks.progress_hook import PROGRESS_FD_ENV
from .models import MissingLanguageModelError


def name_value_pairs(items, option, names=None, cast=str) -> dict:
    """``NAME=VALUE`` command-line items (``--task pets=pets.pth``) as a
    dict of ``cast(VALUE)``; ``names``, when given, the NAMEs allowed. A
    bad item exits with a message naming ``option``."""
    pairs = {}
    for item in items or []:
        name, sep, value = item.partition('=')
        try:
            if not sep or not name or not value or (
                    names is not None and name not in names):
                raise ValueError
            pairs[name] = cast(value)
        except ValueError:
            allowed = f' with NAME in {sorted(names)}' if names else ''
            raise SystemExit(f'error: {option} {item!r}: expected '
                             f'NAME=VALUE{allowed}') from None
    return pairs


def parse_tasks(task_items, text_items):
    """``--task NAME=CKPT`` and ``--task-texts NAME=a,b`` items as
    ``({name: checkpoint}, {name: [class names]})``; a ``--task-texts`` of
    no ``--task`` exits with a message."""
    tasks = name_value_pairs(task_items, '--task')
    texts = {name: value.split(',') for name, value in
             name_value_pairs(text_items, '--task-texts').items()}
    unknown = sorted(set(texts) - set(tasks))
    if unknown:
        raise SystemExit(f'--task-texts {unknown[0]}: no --task of that '
                         f'name (tasks: {", ".join(tasks) or "none"}).')
    return tasks, texts


def add_bank_arguments(parser, task_help: str,
                       tasks_required: bool = False) -> None:
    """What ``tools/infer.py`` and ``tools/serve.py`` share: the prompt
    bank's tasks (``--task``, ``--task-texts``, :func:`parse_tasks`), the
    base weights, the device and ``--cfg-options``."""
    parser.add_argument('--task', action='append', metavar='NAME=CKPT',
                        required=tasks_required, help=task_help)
    parser.add_argument('--task-texts', action='append',
                        metavar='NAME=a,b,c',
                        help="a task's class names, overriding its card's")
    parser.add_argument('--base-weights',
                        help="base detector weights (default: the config's)")
    parser.add_argument('--allow-base-mismatch', action='store_true',
                        help='load prompts tuned on other base weights')
    parser.add_argument('--device', default='cpu')
    add_config_options(parser)


#: The optional requirements file of the serving modules' dependencies.
OPTIONAL_REQUIREMENTS = {'gradio': 'requirements-serve.txt',
                         'gradio_client': 'requirements-serve.txt',
                         'playwright': 'requirements-serve.txt'}


def import_optional(module: str, tool: str):
    """``importlib.import_module(module)``; a module of the package that
    needs an optional dependency which is not installed exits with what to
    install instead of a traceback."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        missing = (err.name or '').split('.')[0]
        if missing not in OPTIONAL_REQUIREMENTS:
            raise
        raise SystemExit(f'{tool} needs {missing}: pip install -r '
                         f'{OPTIONAL_REQUIREMENTS[missing]}') from None


def add_config_options(parser) -> None:
    """``--cfg-options key=value ...``, as every mmdet tool has it."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')


def add_runner_arguments(parser) -> None:
    """What ``tools/train.py`` and ``tools/test.py`` share with mmdet's:
    ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    add_config_options(parser)
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def runner_config(args):
    """The config of ``args.config`` (with ``--cfg-options``) for a Runner:
    the launcher (gloo on a machine without a GPU) and the work dir
    (``--work-dir``, the config's, else :func:`default_work_dir`)."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    setup_cache_size_limit_of_dynamo()
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    setup_cpu_distributed(cfg, args.launcher)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(
        args.config, cfg)
    return cfg


def default_work_dir(config_path, cfg=None):
    """``work_dirs/<config name>[/<setting>]``; the setting (benchmark
    configs) is ``[dataset/]<k>shot_seed<seed>``, so the runs of a protocol
    sit side by side for tools/aggregate_seeds.py."""
    work_dir = osp.join('./work_dirs',
                        osp.splitext(osp.basename(config_path))[0])
    setting = cfg.get('setting') if cfg is not None else None
    if setting:
        work_dir = osp.join(work_dir, setting['name'])
    return work_dir


def setup_cpu_distributed(cfg, launcher):
    """Let ``--launcher pytorch`` run on machines without a GPU.

    mmengine's launcher calls ``torch.cuda.set_device`` and wraps the model in
    DDP with ``device_ids=[LOCAL_RANK]``; both fail on CPU. Without CUDA we
    start the gloo process group ourselves (mmengine then skips its own) and
    build DDP without device ids. GPU runs are left to mmengine (nccl).
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))


def check_weights_exist(cfg):
    """Stop with a message when a local weights file the config needs is
    missing (instead of a stack trace from deep inside the runner)."""
    for key in ('base_weights', 'load_from'):
        path = cfg.get(key)
        if not path or '://' in str(path) or osp.isfile(path):
            continue
        demo = 'data/demo' in str(path)
        raise SystemExit(
            f'{key} = {path}: no such file. '
            + ('Write the demo assets first: python tools/make_demo_assets.py'
               if demo else
               'These are the detector weights the prompts are tuned on and '
               'completed with: download them from the mmdet model zoo (the '
               'URL is in the mmdet config this one inherits) and pass '
               '--cfg-options load_from=PATH base_weights=PATH.'))


@contextlib.contextmanager
def user_errors(cfg=None):
    """Report the project's known failures as one message, exit status 1."""
    try:
        yield
    except (MissingLanguageModelError, CorruptCheckpointError,
            UntrustedCheckpointError, PromptCheckpointMismatch,
            DataCheckError, NonFiniteLossError) as err:
        raise SystemExit(f'{type(err).__name__}: {err}') from None
    except urllib.error.URLError as err:
        urls = [cfg.get(k) for k in ('load_from', 'base_weights')
                if cfg is not None and '://' in str(cfg.get(k))]
        raise SystemExit(
            f'Could not download {urls or "the weights"} ({err.reason}). '
            f'Offline? Download the file elsewhere and pass --cfg-options '
            f'load_from=PATH base_weights=PATH, or put it in the torch hub '
            f'cache {osp.join(torch.hub.get_dir(), "checkpoints")}.') from None


def add_progress_hook(cfg, label: str) -> None:
    """Add ``ProgressHook`` when a grid asked for progress on its terminal
    (``SDPT_PROGRESS_FD`` set): a run's own output then goes to its log."""
    if os.environ.get(PROGRESS_FD_ENV) and not any(
            h.get('type') == 'ProgressHook'
            for h in cfg.get('custom_hooks', [])):
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='ProgressHook', label=label)]


def check_train_data_or_exit(cfg) -> None:
    """Stop before anything is built when the training set has errors;
    warnings are logged."""
    logger = MMLogger.get_instance('sdpt_data_check')
    bad = []
    for report in check_train_data(cfg):
        if report.errors:
            bad.append(report)
        elif report.warnings:
            logger.warning(report.format(max_listed=10))
        else:
            logger.info(report.format())
    if bad:
        raise SystemExit(
            '\n'.join(r.format() for r in bad) +
            '\nThe training data has errors (above): fix them, or check again '
            'with tools/check_annotations.py. --skip-data-check trains '
            'anyway.')


def format_card(info: dict, path: str) -> str:
    """``info`` (:func:`read_checkpoint_meta`) as text for a terminal."""
    signature, card = info['signature'], info['card']
    lines = [f'{path}']
    if signature is None:
        lines.append('  not a prompt checkpoint (no prompt-tuning metadata): '
                     'a detector checkpoint, or one saved without '
                     'PromptTuningHook')
        lines.append(f'  {info["tensors"]} tensors, '
                     f'{info["parameters"]:,} values')
        return '\n'.join(lines)
    if card is None:
        lines.append('  no prompt card (saved before cards existed): no base '
                     'fingerprint, classes or metrics recorded')
    rows = [('method', signature.get('method')),
            ('detector', signature.get('detector'))]
    options = {k: v for k, v in signature.items()
               if k not in ('method', 'detector') + RECORD_ONLY}
    rows.append(('signature', ', '.join(f'{k}={v}' for k, v in
                                        options.items()) or '-'))
    if card:
        task = {k: v for k, v in (card.get('task') or {}).items()
                if v is not None}
        metrics = card.get('metrics') or {}
        rows += [
            ('base fingerprint', card.get('base_fingerprint')),
            ('base weights', card.get('base_weights')),
            ('classes', f'{len(card["classes"])}: ' +
             ', '.join(card['classes']) if card.get('classes') else None),
            ('task', ', '.join(f'{k}={v}' for k, v in task.items()) or None),
            ('experiment', ', '.join(
                f'{k}={v}' for k, v in (card.get('experiment') or {}).items())
             or None),
            ('metrics', (', '.join(f'{k}={v:.4g}' if isinstance(v, float)
                                   else f'{k}={v}'
                                   for k, v in metrics.items()) +
                         f' (iteration {card.get("metrics_iter")})')
             if metrics else 'none (no validation before the save)'),
            ('saved at iteration', card.get('iter')),
            ('trainable', f'{card["trainable"]:,} of {card["total"]:,} '
             f'({card["trainable_percent"]:.4f}%)'),
            ('toolbox', card.get('toolbox_version')),
            ('mmdet / torch', f'{card.get("mmdet_version")} / '
             f'{card.get("torch_version")}'),
            ('saved at', card.get('saved_at')),
        ]
    else:
        rows.append(('base weights', signature.get('base_weights')))
    rows.append(('tensors', f'{info["tensors"]} ({info["parameters"]:,} '
                 f'values)'))
    width = max(len(k) for k, _ in rows)
    lines += [f'  {k:<{width}}  {v}' for k, v in rows if v is not None]
    return '\n'.join(lines)
