"""Evaluate a detector: base weights + a prompt checkpoint (or a full one).

    python tools/test.py CONFIG PROMPT_CHECKPOINT [--out results.pkl]
        [--show-dir vis] [--work-dir DIR] [--metrics-out metrics.json]
        [--report]

``--report`` (on in the benchmark configs) writes the per-class AP table and
bar chart, the metrics and detections JSON and drawn sample detections to
``<work_dir>/report/test/`` (projects/sdpt/reports.py).

A prompt checkpoint (as saved by training) is completed with the config's
base detector weights (``base_weights``, default its ``load_from``).
"""
import argparse
import os.path as osp

import _bootstrap  # noqa: F401

import torch.distributed as dist
from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from mmengine.runner import Runner

from projects.sdpt.cli import (
    add_runner_arguments,
    check_weights_exist,
    runner_config,
    user_errors,
)
from projects.sdpt.utils.io import atomic_write_json


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='prompt (or full) checkpoint; default: the config\'s load_from')
    parser.add_argument('--work-dir', help='dir for the evaluation metrics')
    parser.add_argument(
        '--out', help='dump predictions to a pickle file (.pkl)')
    parser.add_argument(
        '--metrics-out', help='write the evaluation metrics to this .json')
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per shown image')
    parser.add_argument(
        '--show-dir', help='draw predictions into this dir under work-dir')
    parser.add_argument(
        '--report',
        action='store_true',
        help='write the evaluation report (per-class AP table and chart, '
        'metrics and results JSON, drawn detections) to work-dir/report/test')
    parser.add_argument(
        '--allow-base-mismatch',
        action='store_true',
        help='load a prompt checkpoint onto base weights whose fingerprint '
        'differs from the one on its card (a warning instead of an error)')
    add_runner_arguments(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = runner_config(args)
    if args.allow_base_mismatch:
        cfg.allow_base_mismatch = True
    if args.checkpoint:
        if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
            raise SystemExit(f'No checkpoint at {args.checkpoint}')
        cfg.load_from = args.checkpoint
    if args.report and not any(
            h.get('type') == 'EvalReportHook'
            for h in cfg.get('custom_hooks', [])):
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='EvalReportHook')]
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    check_weights_exist(cfg)
    with user_errors(cfg):
        runner = Runner.from_cfg(cfg)
        if args.out:
            if not args.out.endswith(('.pkl', '.pickle')):
                raise SystemExit('--out must be a .pkl or .pickle file')
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
        metrics = runner.test()
    if args.metrics_out:
        if is_main_process():
            atomic_write_json({k: float(v) if isinstance(v, (int, float))
                               else v for k, v in metrics.items()},
                              args.metrics_out, indent=2)
    # Leave the process group cleanly: gloo aborts at interpreter exit
    # when a group is still alive.
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == '__main__':
    main()
