"""Cost of a config against a comparison config: same model family, same input.

    python tools/benchmark.py CONFIG [--compare CONFIG2] [--lang-model DIR] \
        [--options k=v ...] [--compare-options k=v ...] [--size 320] \
        [--batch-sizes 1 4] [--phases infer train] [--warmup 1] \
        [--repeats 3] [--rounds 1] [--json out.json]

Measures, for each config: inference time per image (eval, no_grad) at every
batch size, training step time (forward, loss, backward and an AdamW step over
the trainable parameters with gradient clipping, as mmengine's OptimWrapper
does in training), peak memory of each phase, checkpoint size (what
``PromptTuningHook`` keeps: the trainable parameters only) and trainable %.
It prints medians and the ratios CONFIG / CONFIG2, and writes them as JSON
with ``--json``.

The models are built from the configs with random weights (``load_from`` is
not read): timing and memory do not depend on the weights. The input is
synthetic: ``--size`` x ``--size`` random images captioned with the config's
class names (COCO's when the config names none), with a few random boxes for
the loss.

Every (config, phase, batch size) runs in a fresh child process, so peak
memory is that phase's alone: ``torch.cuda.max_memory_allocated`` on a GPU,
the child's peak resident set size (``ru_maxrss``, weights and runtime
included) on CPU. With ``--rounds N`` the children of the two configs
alternate N times and the medians are over all rounds, which evens out load
from other processes on a shared machine. The same command runs on a GPU
(``--device cuda``, the default when one is present).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

from _common import load_config, setup_environment

setup_environment()

PHASES = ('infer', 'train')


# ---- child: one (config, phase, batch size) --------------------------------
def _build(spec):
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import DictAction  # noqa: F401
    register_all_modules()
    import projects.sdpt  # noqa: F401
    cfg = load_config(spec['config'], spec.get('options'))
    detector = cfg.model.get('detector', cfg.model)
    if spec.get('lang_model'):
        detector.language_model.name = spec['lang_model']
        if 'lang_model_name' in detector.get('bbox_head', {}):
            detector.bbox_head.lang_model_name = spec['lang_model']
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.to(spec['device'])


def _class_names(cfg):
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset = cfg.get(loader, {}).get('dataset', {})
        classes = (dataset.get('metainfo') or {}).get('classes')
        if classes:
            return tuple(classes)
    from mmdet.datasets import CocoDataset
    return tuple(CocoDataset.METAINFO['classes'])


def synthetic_batch(classes, size, batch_size, seed=0):
    """Raw data (what a dataloader yields) of random images with boxes."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(batch_size):
        inputs.append(
            torch.randint(0, 256, (3, size, size), generator=gen,
                          dtype=torch.uint8))
        sample = DetDataSample(
            metainfo=dict(
                img_id=i,
                img_path=f'synthetic_{i}.jpg',
                ori_shape=(size, size),
                img_shape=(size, size),
                scale_factor=(1.0, 1.0),
                text=classes,
                custom_entities=True))
        num_boxes = 3
        xy = torch.rand(num_boxes, 2, generator=gen) * size * 0.6
        wh = torch.rand(num_boxes, 2, generator=gen) * size * 0.3 + 8
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], dim=1),
            labels=torch.randint(0, len(classes), (num_boxes, ),
                                 generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _sync(device):
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def _peak_memory(device):
    import resource
    import torch
    if device == 'cuda':
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def checkpoint_bytes(model):
    """Size of the checkpoint ``PromptTuningHook`` would keep."""
    import torch
    from projects.sdpt.prompt_tuned_detector import allowed_trainable_names
    keep = set(allowed_trainable_names(model))
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    with tempfile.NamedTemporaryFile(suffix='.pth') as f:
        torch.save(dict(state_dict=state), f.name)
        return os.path.getsize(f.name)


def run_child(spec):
    import torch
    from projects.sdpt.prompt_tuned_detector import trainable_parameter_report
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = spec['device']
    cfg, model = _build(spec)
    data = synthetic_batch(_class_names(cfg), spec['size'], spec['batch'])
    times = []
    if spec['phase'] == 'infer':
        model.eval()
        with torch.no_grad():
            batch = model.data_preprocessor(data, training=False)
            for i in range(spec['warmup'] + spec['repeats']):
                _sync(device)
                start = time.perf_counter()
                model(**batch, mode='predict')
                _sync(device)
                if i >= spec['warmup']:
                    times.append(time.perf_counter() - start)
    else:
        from mmengine.optim import OptimWrapper
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise SystemExit(f'{spec["config"]}: nothing trains')
        wrapper = OptimWrapper(
            torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.01),
            clip_grad=dict(max_norm=1.0, norm_type=2))
        model.train()
        for i in range(spec['warmup'] + spec['repeats']):
            _sync(device)
            start = time.perf_counter()
            model.train_step(data, wrapper)
            _sync(device)
            if i >= spec['warmup']:
                times.append(time.perf_counter() - start)
    result = dict(times_s=times, peak_memory_bytes=_peak_memory(device))
    if spec.get('with_checkpoint'):
        result.update(
            checkpoint_bytes=checkpoint_bytes(model),
            **trainable_parameter_report(model))
    return result


# ---- parent ------------------------------------------------------------------
def _spawn(spec):
    proc = subprocess.run(
        [sys.executable, osp.abspath(__file__), '--child',
         json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f'benchmark child failed: {spec}')
    return json.loads(lines[-1][len('RESULT '):])


def _parse_options(items):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction, default={})
    return parser.parse_args(['--o', *items]).o if items else {}


def summarise(runs):
    """Medians over every timed repetition of every round."""
    out = {}
    for key, results in runs.items():
        times = [t for r in results for t in r['times_s']]
        out[key] = dict(
            median_s=statistics.median(times),
            times_s=times,
            peak_memory_bytes=max(r['peak_memory_bytes'] for r in results))
    return out


def benchmark(args):
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    configs = [('config', args.config, _parse_options(args.options))]
    if args.compare:
        configs.append(('compare', args.compare,
                        _parse_options(args.compare_options)))
    jobs = []
    for phase in args.phases:
        for batch in (args.batch_sizes if phase == 'infer' else
                      [args.train_batch_size]):
            jobs.append((phase, batch))
    runs, info = {}, {}
    for round_ in range(args.rounds):
        for phase, batch in jobs:
            for label, path, options in configs:
                spec = dict(
                    config=path, options=options, lang_model=args.lang_model,
                    device=device, size=args.size, batch=batch, phase=phase,
                    warmup=args.warmup, repeats=args.repeats,
                    threads=args.threads,
                    with_checkpoint=label not in info)
                result = _spawn(spec)
                if 'checkpoint_bytes' in result:
                    info[label] = {
                        k: result[k]
                        for k in ('checkpoint_bytes', 'trainable', 'total',
                                  'percent')
                    }
                runs.setdefault(f'{label}/{phase}/b{batch}', []).append(result)
                print(f'[round {round_}] {label} {phase} batch {batch}: '
                      f'{statistics.median(result["times_s"]):.3f} s, '
                      f'peak {result["peak_memory_bytes"] / 2**30:.2f} GiB',
                      flush=True)
    stats = summarise(runs)
    report = dict(
        device=device, size=args.size, threads=torch.get_num_threads()
        if device == 'cpu' and not args.threads else args.threads,
        rounds=args.rounds, repeats=args.repeats, warmup=args.warmup,
        # which GPU, or which torch build on CPU: figures are only
        # comparable on the same one
        device_name=(torch.cuda.get_device_name()
                     if device == 'cuda' else 'cpu'),
        torch=torch.__version__, configs={}, ratios={})
    for label, path, options in configs:
        entry = dict(path=path, options=options, **info.get(label, {}))
        for phase, batch in jobs:
            s = stats[f'{label}/{phase}/b{batch}']
            if phase == 'infer':
                entry[f'infer_s_per_image_b{batch}'] = s['median_s'] / batch
                entry[f'infer_peak_memory_bytes_b{batch}'] = \
                    s['peak_memory_bytes']
            else:
                entry['train_step_s'] = s['median_s']
                entry['train_peak_memory_bytes'] = s['peak_memory_bytes']
        infer_batches = [b for p, b in jobs if p == 'infer']
        if 1 in infer_batches:
            for b in infer_batches:
                if b != 1:
                    # throughput ratio = time per image at 1 / at b
                    entry[f'throughput_b{b}_over_b1'] = (
                        entry['infer_s_per_image_b1'] /
                        entry[f'infer_s_per_image_b{b}'])
        report['configs'][label] = entry
    if args.compare:
        a, b = report['configs']['config'], report['configs']['compare']
        for key, value in a.items():
            if isinstance(value, (int, float)) and isinstance(
                    b.get(key), (int, float)) and b[key] and \
                    not key.startswith('throughput'):
                report['ratios'][key] = value / b[key]
    return report


def print_report(report):
    print(f"\ndevice {report['device']}, {report['size']}x{report['size']}, "
          f"threads {report['threads']}, medians of {report['rounds']} "
          f"round(s) x {report['repeats']} repetitions")
    labels = list(report['configs'])
    keys = []
    for entry in report['configs'].values():
        keys += [k for k in entry if k not in keys and k not in (
            'path', 'options')]
    names = [report['configs'][l]['path'] for l in labels]
    for label, name in zip(labels, names):
        print(f'  {label}: {name} {report["configs"][label]["options"] or ""}')
    header = f'{"metric":34s}' + ''.join(f'{l:>16s}' for l in labels)
    if report['ratios']:
        header += f'{"config/compare":>16s}'
    print(header)
    for key in keys:
        row = f'{key:34s}'
        for label in labels:
            value = report['configs'][label].get(key)
            if value is None:
                row += f'{"-":>16s}'
            elif 'bytes' in key:
                row += f'{value / 2**20:>12.1f} MiB'
            elif isinstance(value, float):
                row += f'{value:>16.4f}'
            else:
                row += f'{value:>16,}'
        if key in report['ratios']:
            row += f'{report["ratios"][key]:>16.3f}'
        print(row)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('config', nargs='?')
    parser.add_argument('--compare', help='comparison config')
    parser.add_argument('--options', nargs='+', default=[],
                        help='key=value overrides of CONFIG')
    parser.add_argument('--compare-options', nargs='+', default=[],
                        help='key=value overrides of the comparison config')
    parser.add_argument('--lang-model', help='local BERT directory')
    parser.add_argument('--size', type=int, default=320)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1])
    parser.add_argument('--train-batch-size', type=int, default=1)
    parser.add_argument('--phases', nargs='+', choices=PHASES,
                        default=list(PHASES))
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=1)
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    parser.add_argument('--device', choices=('cpu', 'cuda'))
    parser.add_argument('--json', help='write the report here')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print('RESULT ' + json.dumps(run_child(json.loads(args.child))))
        return
    if not args.config:
        parser.error('CONFIG is required')
    report = benchmark(args)
    print_report(report)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
