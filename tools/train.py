"""Train a prompt-tuned (or any mmdet) detector with an mmengine Runner.

    python tools/train.py configs/sdpt_glip_coco_1shot.py [--amp] [--resume]
"""
import argparse
import os.path as osp

import _bootstrap  # noqa: F401

import torch.distributed as dist
from mmengine.runner import Runner

from projects.sdpt.cli import (
    add_progress_hook,
    add_runner_arguments,
    check_train_data_or_exit,
    check_weights_exist,
    runner_config,
    user_errors,
)
from projects.sdpt.engine.hooks import use_atomic_checkpoints


def parse_args():
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
    add_runner_arguments(parser)
    parser.add_argument(
        '--skip-data-check',
        action='store_true',
        help='do not check the training annotations and images first')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = runner_config(args)
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
    use_atomic_checkpoints(cfg)
    add_progress_hook(cfg, '/'.join(cfg.work_dir.rstrip('/').split('/')[-2:]))
    if not args.skip_data_check:
        check_train_data_or_exit(cfg)
    check_weights_exist(cfg)
    with user_errors(cfg):
        runner = Runner.from_cfg(cfg)
        runner.train()
    # Leave the process group cleanly: gloo aborts at interpreter exit
    # when a group is still alive.
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
