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
(``python -m projects.sdpt.experiments.benchmark_child --child SPEC``), so
peak memory is that phase's alone: ``torch.cuda.max_memory_allocated`` on a
GPU, the child's peak resident set size (``ru_maxrss``, weights and runtime
included) on CPU. With ``rounds=N`` the children of the two configs
alternate N times and the medians are over all rounds, which evens out
load from other processes on a shared machine. Usage::

    from projects.sdpt.experiments.speed import benchmark, print_report
    report = benchmark('configs/a.py', compare='configs/b.py',
                       lang_model='/tmp/bert-base', batch_sizes=(1, 4))
    print_report(report)

``tools/speed_benchmark.py`` is the command line.
"""
import os
import statistics
import tempfile
import time

import torch
from mmengine.optim import OptimWrapper

from ..methods.trainable import (
    allowed_trainable_names,
    trainable_parameter_report,
)
from .measurement import (
    NothingTrainsError,
    build_model,
    class_names,
    peak_memory,
    spawn_child,
    sync,
    synthetic_batch,
)

PHASES = ('infer', 'train')
# ---- child: one (config, phase, batch size) --------------------------------
def checkpoint_bytes(model):
    """Size of the checkpoint ``PromptTuningHook`` would keep."""
    keep = set(allowed_trainable_names(model))
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    with tempfile.NamedTemporaryFile(suffix='.pth') as f:
        torch.save(dict(state_dict=state), f.name)
        return os.path.getsize(f.name)


def run_child(spec):
    """Time one (config, phase, batch size) of ``spec`` in this process:
    ``times_s`` of the repetitions after warm-up, ``peak_memory_bytes``, and
    with ``with_checkpoint`` the checkpoint size and trainable counts."""
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = spec['device']
    cfg, model = build_model(spec)
    data = synthetic_batch(class_names(cfg), spec['size'], spec['batch'])
    times = []
    if spec['phase'] == 'infer':
        model.eval()
        with torch.no_grad():
            batch = model.data_preprocessor(data, training=False)
            for i in range(spec['warmup'] + spec['repeats']):
                sync(device)
                start = time.perf_counter()
                model(**batch, mode='predict')
                sync(device)
                if i >= spec['warmup']:
                    times.append(time.perf_counter() - start)
    else:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise NothingTrainsError(f'{spec["config"]}: nothing trains')
        wrapper = OptimWrapper(
            torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.01),
            clip_grad=dict(max_norm=1.0, norm_type=2))
        model.train()
        for i in range(spec['warmup'] + spec['repeats']):
            sync(device)
            start = time.perf_counter()
            model.train_step(data, wrapper)
            sync(device)
            if i >= spec['warmup']:
                times.append(time.perf_counter() - start)
    result = dict(times_s=times, peak_memory_bytes=peak_memory(device))
    if spec.get('with_checkpoint'):
        result.update(
            checkpoint_bytes=checkpoint_bytes(model),
            **trainable_parameter_report(model))
    return result


# ---- parent -----------------------------------------------------------------
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
