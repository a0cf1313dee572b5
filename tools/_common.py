"""What tools/train.py and tools/test.py share."""
import contextlib
import os
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def setup_environment():
    """Make ``projects.sdpt`` importable and silence known noise."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    # mmengine imports pkg_resources (kept below setuptools 81, see
    # requirements.txt), which warns on every import.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')


def load_config(path, cfg_options=None):
    from mmengine.config import Config
    if not osp.isfile(path):
        raise SystemExit(f'Config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # Benchmark configs (configs/odinw, lvis, custom): fill in the data of
    # the chosen dataset / shots / seed (projects/sdpt/benchmarks.py).
    from projects.sdpt.benchmarks import BenchmarkError, apply_benchmark
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
    from projects.sdpt.checkpoint import (CorruptCheckpointError,
                                          UntrustedCheckpointError)
    from projects.sdpt.data_check import DataCheckError
    from projects.sdpt.hooks import PromptCheckpointMismatch
    from projects.sdpt.prompt_tuned_detector import MissingLanguageModelError
    from projects.sdpt.reliability import NonFiniteLossError
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
