"""What the speed benchmarks (``speed.py``, ``bank_speed.py``) share: the
model of a measurement spec, a synthetic batch, device sync and peak memory,
and the fresh child process each measurement runs in
(``benchmark_child.py``), so that its peak memory is its own."""
import json
import os
import resource
import subprocess
import sys

import torch
from mmdet.datasets import CocoDataset
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.structures import InstanceData

from ..detectors.text_encoder import set_text_encoder
from ..engine.config import load_config
from ..utils.paths import REPO_ROOT

#: The module a measurement's child process runs.
CHILD_MODULE = 'projects.sdpt.experiments.benchmark_child'
#: Prefix of the child's result line on stdout (the rest is the JSON).
RESULT_PREFIX = 'RESULT '


class ChildFailedError(RuntimeError):
    """A measurement's child process failed (its stderr was printed)."""


class NothingTrainsError(ValueError):
    """A config without trainable parameters: no training step to time."""


def build_model(spec):
    """``(cfg, model)`` of ``spec``'s config, built with random weights (seed
    0) on ``spec['device']``: timing and memory do not depend on them."""
    register_all_modules()
    cfg = load_config(spec['config'], spec.get('options'))
    detector = cfg.model.get('detector', cfg.model)
    if spec.get('lang_model'):
        set_text_encoder(detector, spec['lang_model'])
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
    return tuple(CocoDataset.METAINFO['classes'])


def synthetic_batch(classes, size, batch_size, seed=0):
    """Raw data (what a dataloader yields) of random images with boxes."""
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


def sync(device):
    """Wait for the device's queued work (a GPU's), so timings are whole."""
    if device == 'cuda':
        torch.cuda.synchronize()


def peak_memory(device):
    """Peak memory of this process: allocated on a GPU, resident on CPU."""
    if device == 'cuda':
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def spawn_child(spec):
    """One measurement of ``spec`` (``benchmark_child.py``) in a fresh Python
    process; its result."""
    # The child imports the package from the repository root whatever the
    # working directory; config paths in ``spec`` stay relative to it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run(
        [sys.executable, '-m', CHILD_MODULE, '--child', json.dumps(spec)],
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
