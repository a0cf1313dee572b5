"""Cost of a config against a comparison config: same model family, same input.

Measures, for each config: inference time per image (eval, no_grad) at every
batch size, training step time (forward, loss, backward and an AdamW step over
the trainable parameters with gradient clipping, as mmengine's OptimWrapper
does in training), peak memory of each phase, checkpoint size (what
``PromptTuningHook`` keeps: the trainable parameters only) and trainable %;
medians, and the ratios config / compare.

The models are built from the configs with random weights (``load_from`` is
not read): timing and memory do not depend on the weights. The input is
synthetic: ``size`` x ``size`` random images captioned with the config's
class names (COCO's when the config names none), with a few random boxes for
the loss.

Every (config, phase, batch size) runs in a fresh child process
(``python -m projects.sdpt.experiments.speed --child SPEC``), so peak memory
is that phase's alone: ``torch.cuda.max_memory_allocated`` on a GPU, the
child's peak resident set size (``ru_maxrss``, weights and runtime included)
on CPU. With ``rounds=N`` the children of the two configs alternate N times
and the medians are over all rounds, which evens out load from other
processes on a shared machine. Usage::

    from projects.sdpt.experiments.speed import benchmark, print_report
    report = benchmark('configs/a.py', compare='configs/b.py',
                       lang_model='/tmp/bert-base', batch_sizes=(1, 4))
    print_report(report)

``tools/speed_benchmark.py`` is the command line.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from ..utils.cli import REPO_ROOT, load_config

PHASES = ('infer', 'train')
#: Prefix of the child's result line on stdout (the rest is the JSON).
RESULT_PREFIX = 'RESULT '


class ChildFailedError(RuntimeError):
    """A measurement's child process failed (its stderr was printed)."""


class NothingTrainsError(ValueError):
    """A config without trainable parameters: no training step to time."""


# ---- child: one (config, phase, batch size) --------------------------------
def _build(spec):
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
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


def class_names(cfg):
    """The config's class names (train, else test data), else COCO's."""
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
    from ..models.prompt_tuned_detector import allowed_trainable_names
    keep = set(allowed_trainable_names(model))
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    with tempfile.NamedTemporaryFile(suffix='.pth') as f:
        torch.save(dict(state_dict=state), f.name)
        return os.path.getsize(f.name)


def run_child(spec):
    """Time one (config, phase, batch size) of ``spec`` in this process:
    ``times_s`` of the repetitions after warm-up, ``peak_memory_bytes``, and
    with ``with_checkpoint`` the checkpoint size and trainable counts."""
    import torch
    from ..models.prompt_tuned_detector import trainable_parameter_report
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = spec['device']
    cfg, model = _build(spec)
    data = synthetic_batch(class_names(cfg), spec['size'], spec['batch'])
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
            raise NothingTrainsError(f'{spec["config"]}: nothing trains')
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


# ---- parent -----------------------------------------------------------------
def spawn_child(spec):
    """``run_child(spec)`` in a fresh Python process; its result."""
    # The child imports the package from the repository root whatever the
    # working directory; config paths in ``spec`` stay relative to it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run(
        [sys.executable, '-m', __name__, '--child', json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env)
    lines = [line for line in proc.stdout.splitlines()
             if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise ChildFailedError(f'benchmark child failed: {spec}')
    return json.loads(lines[-1][len(RESULT_PREFIX):])


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


def benchmark(config, compare=None, options=None, compare_options=None,
              lang_model=None, size=320, batch_sizes=(1, ),
              train_batch_size=1, phases=PHASES, warmup=1, repeats=3,
              rounds=1, threads=None, device=None, spawn=spawn_child):
    """Measure ``config`` (and ``compare``) phase by phase, each in a child
    (``spawn``); the report dict (module doc). ``options`` /
    ``compare_options``: ``{key: value}`` overrides of each config."""
    import torch
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    configs = [('config', config, dict(options or {}))]
    if compare:
        configs.append(('compare', compare, dict(compare_options or {})))
    jobs = []
    for phase in phases:
        for batch in (batch_sizes if phase == 'infer' else
                      [train_batch_size]):
            jobs.append((phase, batch))
    runs, info = {}, {}
    for round_ in range(rounds):
        for phase, batch in jobs:
            for label, path, opts in configs:
                spec = dict(
                    config=path, options=opts, lang_model=lang_model,
                    device=device, size=size, batch=batch, phase=phase,
                    warmup=warmup, repeats=repeats, threads=threads,
                    with_checkpoint=label not in info)
                result = spawn(spec)
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
        device=device, size=size, threads=torch.get_num_threads()
        if device == 'cpu' and not threads else threads,
        rounds=rounds, repeats=repeats, warmup=warmup,
        # which GPU, or which torch build on CPU: figures are only
        # comparable on the same one
        device_name=(torch.cuda.get_device_name()
                     if device == 'cuda' else 'cpu'),
        torch=torch.__version__, configs={}, ratios={})
    for label, path, opts in configs:
        entry = dict(path=path, options=opts, **info.get(label, {}))
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
    if compare:
        a, b = report['configs']['config'], report['configs']['compare']
        for key, value in a.items():
            if isinstance(value, (int, float)) and isinstance(
                    b.get(key), (int, float)) and b[key] and \
                    not key.startswith('throughput'):
                report['ratios'][key] = value / b[key]
    return report


def print_report(report):
    """The report as a table: one row per figure, one column per config,
    and the ratio config / compare."""
    print(f"\ndevice {report['device']}, {report['size']}x{report['size']}, "
          f"threads {report['threads']}, medians of {report['rounds']} "
          f"round(s) x {report['repeats']} repetitions")
    labels = list(report['configs'])
    keys = []
    for entry in report['configs'].values():
        keys += [k for k in entry if k not in keys and k not in (
            'path', 'options')]
    for label in labels:
        entry = report['configs'][label]
        print(f'  {label}: {entry["path"]} {entry["options"] or ""}')
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


def child_main(argv=None):
    """Entry point of a child: run the JSON spec, print the result line."""
    parser = argparse.ArgumentParser(description='one benchmark child')
    parser.add_argument('--child', required=True, help='JSON spec')
    spec = json.loads(parser.parse_args(argv).child)
    try:
        if spec.get('bank_mode'):
            from .bank_speed import run_bank_child
            result = run_bank_child(spec)
        else:
            result = run_child(spec)
    except NothingTrainsError as err:
        raise SystemExit(str(err)) from None
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == '__main__':
    child_main()
