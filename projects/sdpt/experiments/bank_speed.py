"""Many tasks on one base, measured: a prompt bank against N detector
instances and against running the tasks one after the other.

For each task count N, every mode detects the same workload, ``batch``
images per task (N x batch images, random ``size`` x ``size`` pixels, each
task with its own random prompts and its own order of the config's class
names):

* ``bank``: one detector and a :class:`PromptBank` of N tasks; batches of
  ``batch`` images whose tasks alternate (every batch mixes tasks);
* ``separate``: N detector instances, one per task, each running its task's
  images;
* ``sequential``: one detector; per task, its prompts are loaded into the
  detector (``load_state_dict``), then its images run;
* ``bank_uncached`` (fusion-prompt methods): the bank with the prompted-key
  cache off, so every forward projects the prompt tokens again.

Each (N, mode) runs in a fresh child process (``speed.py``'s), so its peak
memory is its own: ``torch.cuda.max_memory_allocated`` on a GPU, the peak
resident set size on CPU (weights, runtime and activations). Also reported:
``model_bytes`` (the parameters and buffers of the detector instances and
the bank's task tensors) and ``prompt_projections_per_image`` (how often the
method computed a task's prompt tokens and projections, per image). Ratios
per N: bank / separate and bank / sequential of images/s and of memory,
cached / uncached images/s. ``tools/speed_benchmark.py --bank-tasks 1 4 16``
is the command line.
"""
import statistics
import time

import torch

from ..checkpoint.prompt_checkpoint import CARD_KEY, META_KEY
from ..inference.prompt_bank import PromptBank
from .measurement import (
    build_model,
    class_names,
    peak_memory,
    spawn_child,
    sync,
    synthetic_batch,
)

BANK_MODES = ('bank', 'separate', 'sequential', 'bank_uncached')


def _task_prompts(method, count):
    """``count`` sets of random values of the method's parameters."""
    tasks = []
    for t in range(count):
        gen = torch.Generator().manual_seed(1000 + t)
        tasks.append({
            name: torch.rand(p.shape, generator=gen).mul(2).sub(1).to(
                p.device, p.dtype)
            for name, p in method.named_parameters()
        })
    return tasks


def _rotated(classes, t):
    t %= len(classes)
    return tuple(classes[t:]) + tuple(classes[:t])


def run_bank_child(spec):
    """Time one (N, mode) of ``spec`` in this process (module docstring)."""

    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device, mode, count = spec['device'], spec['mode'], spec['tasks']
    batch = spec['batch']
    cfg, model = build_model(spec)
    model.eval()
    method = model.prompt_tuning
    prompts = _task_prompts(method, count)
    classes = class_names(cfg)
    task_classes = [_rotated(classes, t) for t in range(count)]
    models = [model]
    bank = None
    if mode == 'separate':
        models += [build_model(spec)[1].eval() for _ in range(count - 1)]
        for instance, values in zip(models, prompts):
            instance.prompt_tuning.load_state_dict(values)
    elif mode.startswith('bank'):
        bank = PromptBank(model, fingerprint='benchmark')
        for t, values in enumerate(prompts):
            bank.add(f'task{t}', dict(
                meta={META_KEY: method.signature(),
                      CARD_KEY: dict(base_fingerprint='benchmark')},
                state_dict={f'prompt_tuning.{k}': v
                            for k, v in values.items()}),
                classes=task_classes[t])
        method.cache_prompts = mode != 'bank_uncached'
    # the work: per task, ``batch`` images captioned with its classes
    per_task = [model.data_preprocessor(
        synthetic_batch(task_classes[t], spec['size'], batch, seed=t),
        training=False) for t in range(count)]
    if bank is not None:
        # batches that mix tasks: image j of batch i is task (i*batch+j) % N
        order = [(t, j) for j in range(batch) for t in range(count)]
        jobs = []
        for start in range(0, len(order), batch):
            chunk = order[start:start + batch]
            jobs.append(([f'task{t}' for t, _ in chunk], dict(
                inputs=torch.stack(
                    [per_task[t]['inputs'][j] for t, j in chunk]),
                data_samples=[per_task[t]['data_samples'][j]
                              for t, j in chunk])))
    calls = [0]  # prompt token computations (each followed by projections)

    def counting(original):
        def prompt_tokens(layer):
            calls[0] += 1
            return original(layer)
        return prompt_tokens

    for instance in models:
        if hasattr(instance.prompt_tuning, 'prompt_tokens'):
            instance.prompt_tuning.prompt_tokens = counting(
                instance.prompt_tuning.prompt_tokens)

    def run_all():
        with torch.no_grad():
            if bank is not None:
                for names, data in jobs:
                    with bank.selecting(names):
                        model(**data, mode='predict')
            elif mode == 'separate':
                for instance, data in zip(models, per_task):
                    instance(**data, mode='predict')
            else:  # sequential: reload each task's prompts, then its images
                for values, data in zip(prompts, per_task):
                    method.load_state_dict(values)
                    model(**data, mode='predict')

    times = []
    for i in range(spec['warmup'] + spec['repeats']):
        if i == spec['warmup']:
            calls[0] = 0
        sync(device)
        start = time.perf_counter()
        run_all()
        sync(device)
        if i >= spec['warmup']:
            times.append(time.perf_counter() - start)
    images = count * batch
    model_bytes = sum(
        t.numel() * t.element_size() for m in models
        for t in list(m.parameters()) + list(m.buffers()))
    if bank is not None:
        model_bytes += sum(t.numel() * t.element_size()
                           for task in bank.tasks.values()
                           for t in task.parameters.values())
    return dict(
        times_s=times,
        images_per_s=[images / t for t in times],
        peak_memory_bytes=peak_memory(device),
        model_bytes=model_bytes,
        prompt_projections_per_image=calls[0] / (images * spec['repeats']))


def benchmark_bank(config, options=None, lang_model=None, size=320,
                   batch=4, task_counts=(1, 4, 16), modes=BANK_MODES,
                   warmup=1, repeats=3, threads=None, device=None,
                   spawn=spawn_child):
    """The report dict (module docstring): ``runs[N][mode]`` and
    ``ratios[N]``."""
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    report = dict(
        config=config, options=dict(options or {}), device=device,
        device_name=(torch.cuda.get_device_name()
                     if device == 'cuda' else 'cpu'),
        torch=torch.__version__, size=size, batch=batch, warmup=warmup,
        repeats=repeats, threads=threads, runs={}, ratios={})
    for count in task_counts:
        runs = report['runs'][str(count)] = {}
        for mode in modes:
            result = spawn(dict(
                bank_mode=True, config=config, options=dict(options or {}),
                lang_model=lang_model, device=device, size=size,
                batch=batch, tasks=count, mode=mode, warmup=warmup,
                repeats=repeats, threads=threads))
            runs[mode] = dict(
                images_per_s=statistics.median(result['images_per_s']),
                peak_memory_bytes=result['peak_memory_bytes'],
                model_bytes=result['model_bytes'],
                prompt_projections_per_image=result[
                    'prompt_projections_per_image'],
                times_s=result['times_s'])
            print(f'N={count} {mode}: '
                  f'{runs[mode]["images_per_s"]:.3f} images/s, peak '
                  f'{result["peak_memory_bytes"] / 2**30:.2f} GiB, models '
                  f'{result["model_bytes"] / 2**20:.1f} MiB', flush=True)
        report['ratios'][str(count)] = _ratios(runs)
    return report


def _ratios(runs):
    ratios = {}
    bank = runs.get('bank')
    if bank is None:
        return ratios
    for other in ('separate', 'sequential'):
        if other in runs:
            for key in ('images_per_s', 'peak_memory_bytes', 'model_bytes'):
                ratios[f'bank_over_{other}_{key}'] = \
                    bank[key] / runs[other][key]
    if 'bank_uncached' in runs:
        ratios['cached_over_uncached_images_per_s'] = \
            bank['images_per_s'] / runs['bank_uncached']['images_per_s']
    return ratios


def print_bank_report(report):
    print(f"\n{report['config']} {report['options'] or ''}: device "
          f"{report['device']} ({report['device_name']}), "
          f"{report['size']}x{report['size']}, batch {report['batch']}, "
          f"medians of {report['repeats']} repetitions")
    print(f'{"N":>3} {"mode":14s} {"images/s":>9} {"peak MiB":>9} '
          f'{"models MiB":>10} {"proj/img":>8}')
    for count, runs in report['runs'].items():
        for mode, run in runs.items():
            print(f'{count:>3} {mode:14s} {run["images_per_s"]:9.3f} '
                  f'{run["peak_memory_bytes"] / 2**20:9.0f} '
                  f'{run["model_bytes"] / 2**20:10.1f} '
                  f'{run["prompt_projections_per_image"]:8.3f}')
        for key, value in report['ratios'][count].items():
            print(f'    {key}: {value:.3f}')
