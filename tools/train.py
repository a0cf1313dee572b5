"""Train a prompt-tuned (or any mmdet) detector with an mmengine Runner.

    python tools/train.py configs/sdpt_glip_coco_1shot.py [--amp] [--resume]
"""
import argparse
import os.path as osp

from _common import (check_weights_exist, default_work_dir, load_config,
                     setup_cpu_distributed, setup_environment, user_errors)

setup_environment()


def parse_args():
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='enable auto-scale LR')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest one in the work '
        'dir when no path is given')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--skip-data-check',
        action='store_true',
        help='do not check the training annotations and images first')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args()


def check_data(cfg):
    """Fail before anything is built when the training set is broken."""
    from mmengine.logging import MMLogger
    from projects.sdpt.data_check import check_train_data
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


def main():
    args = parse_args()
    import os
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.runner import Runner
    setup_cache_size_limit_of_dynamo()

    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    setup_cpu_distributed(cfg, args.launcher)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or default_work_dir(
        args.config, cfg)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise SystemExit(f'{args.config} has no auto_scale_lr setting.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'--resume: no checkpoint at {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume

    # Checkpoints written atomically (a kill leaves the previous one whole).
    from projects.sdpt.reliability import use_atomic_checkpoints
    use_atomic_checkpoints(cfg)
    if not args.skip_data_check:
        check_data(cfg)
    check_weights_exist(cfg)
    with user_errors(cfg):
        runner = Runner.from_cfg(cfg)
        runner.train()
    # Leave the process group cleanly: gloo aborts at interpreter exit
    # when a group is still alive.
    import torch.distributed as dist
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
