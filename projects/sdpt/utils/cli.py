"""What the command-line tools share: loading a config the project's way,
work directories, CPU distributed runs, missing weights and known failures
as one clear message."""
import contextlib
import os.path as osp

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def load_config(path, cfg_options=None):
    from mmengine.config import Config
    if not osp.isfile(path):
        raise SystemExit(f'Config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # Benchmark configs (configs/odinw, lvis, custom): fill in the data of
    # the chosen dataset / shots / seed (datasets/benchmark_settings.py).
    from ..datasets.benchmark_settings import BenchmarkError, apply_benchmark
    try:
        apply_benchmark(cfg)
    except BenchmarkError as e:
        raise SystemExit(f'{path}: {e}')
    # Remember the detector weights before --resume / --checkpoint replace
    # load_from: prompt checkpoints are completed with them on load.
    if cfg.get('base_weights') is None and cfg.get('load_from'):
        cfg.base_weights = cfg.load_from
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
    import torch
    import torch.distributed as dist
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
    import urllib.error
    from ..datasets.data_check import DataCheckError
    from ..engine.checkpoint_loading import (CorruptCheckpointError,
                                             UntrustedCheckpointError)
    from ..engine.hooks import NonFiniteLossError, PromptCheckpointMismatch
    from ..models import MissingLanguageModelError
    try:
        yield
    except (MissingLanguageModelError, CorruptCheckpointError,
            UntrustedCheckpointError, PromptCheckpointMismatch,
            DataCheckError, NonFiniteLossError) as err:
        raise SystemExit(f'{type(err).__name__}: {err}') from None
    except urllib.error.URLError as err:
        urls = [cfg.get(k) for k in ('load_from', 'base_weights')
                if cfg is not None and '://' in str(cfg.get(k))]
        import torch
        raise SystemExit(
            f'Could not download {urls or "the weights"} ({err.reason}). '
            f'Offline? Download the file elsewhere and pass --cfg-options '
            f'load_from=PATH base_weights=PATH, or put it in the torch hub '
            f'cache {osp.join(torch.hub.get_dir(), "checkpoints")}.') from None


def add_progress_hook(cfg, label: str) -> None:
    """Add ``ProgressHook`` when a grid asked for progress on its terminal
    (``SDPT_PROGRESS_FD`` set): a run's own output then goes to its log."""
    import os
    from ..engine.hooks.progress_hook import PROGRESS_FD_ENV
    if os.environ.get(PROGRESS_FD_ENV) and not any(
            h.get('type') == 'ProgressHook'
            for h in cfg.get('custom_hooks', [])):
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='ProgressHook', label=label)]


def check_train_data_or_exit(cfg) -> None:
    """Stop before anything is built when the training set has errors;
    warnings are logged."""
    from mmengine.logging import MMLogger
    from ..datasets.data_check import check_train_data
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
