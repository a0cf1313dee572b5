"""The CPU numerics a run computes with: pinned, perturbed on purpose, and
recorded.

Float results of training depend on the kernels a CPU runs: ATen picks its
vector width (AVX-512 where the CPU has it, else AVX2), MKL and oneDNN pick
code paths per CPU, and the thread count changes summation orders. A
difference in the 7th digit of one step grows over a few hundred steps into
a different tuned model. So every run of the project's experiments runs in
one of these modes, set in the environment of the process *before* torch
computes anything (the grid's workers are fresh processes that inherit it):

* ``pinned`` (the default): ATen, MKL and oneDNN capped at AVX2, which every
  x86-64 machine of this kind has (MKL's AVX2 branch is Intel's only: on
  other CPUs MKL takes its automatic one); with one thread, a run repeats
  bit for bit on the same machine, but not on another CPU model (an Intel
  Xeon and an AMD EPYC under these caps differ in the 7th digit of the
  first loss; under ``mkl-compatible`` their first losses agree, their
  trained results do not): ``numerics_record()`` says which CPU a result
  is from;
* ``native``: whatever the machine chooses (nothing set);
* ``aten-default``: ATen without vectorisation (the others pinned),
  ``mkl-compatible``: MKL's most portable code path (the others pinned), and
  ``threads-2``: pinned, but two threads per run (other summation orders):
  perturbations, to measure how far a result moves with the arithmetic.

Every mode but ``threads-2`` runs one thread; the thread count travels to
worker processes as ``OMP_NUM_THREADS`` (:func:`run_threads`).
"""
import os
import platform
from typing import Dict

import mmcv
import mmdet
import mmengine
import numpy as np
import torch

#: Environment of each mode (the variables of ``PINNABLE`` not named are
#: removed).
NUMERICS: Dict[str, Dict[str, str]] = {
    'pinned': dict(ATEN_CPU_CAPABILITY='avx2', MKL_CBWR='AVX2',
                   ONEDNN_MAX_CPU_ISA='AVX2'),
    'native': {},
    'aten-default': dict(ATEN_CPU_CAPABILITY='default', MKL_CBWR='AVX2',
                         ONEDNN_MAX_CPU_ISA='AVX2'),
    'mkl-compatible': dict(ATEN_CPU_CAPABILITY='avx2', MKL_CBWR='COMPATIBLE',
                           ONEDNN_MAX_CPU_ISA='AVX2'),
    'threads-2': dict(ATEN_CPU_CAPABILITY='avx2', MKL_CBWR='AVX2',
                      ONEDNN_MAX_CPU_ISA='AVX2', OMP_NUM_THREADS='2'),
}
PINNABLE = ('ATEN_CPU_CAPABILITY', 'MKL_CBWR', 'ONEDNN_MAX_CPU_ISA',
            'OMP_NUM_THREADS')
#: torch threads of a run where its mode does not set ``OMP_NUM_THREADS``:
#: results depend on the count, so it is fixed
RUN_THREADS = 1
DEFAULT_NUMERICS = 'pinned'
#: CPU flags worth recording (what the kernels above choose between).
ISA_FLAGS = ('sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw',
             'avx512_vnni', 'avx512_bf16', 'amx_tile')


def set_numerics(mode: str, environ=None) -> Dict[str, str]:
    """Set ``mode``'s variables in ``environ`` (``os.environ``), removing
    the other pinnable ones; returns what is set. Takes effect in processes
    started afterwards (and in this one if torch has computed nothing)."""
    if mode not in NUMERICS:
        raise ValueError(f'numerics mode {mode!r}: choose one of '
                         f'{", ".join(NUMERICS)}')
    environ = os.environ if environ is None else environ
    for name in PINNABLE:
        environ.pop(name, None)
    environ.update(NUMERICS[mode])
    return dict(NUMERICS[mode])


def numerics_mode(environ=None) -> str:
    """The mode ``environ`` (``os.environ``) is in, or ``custom``."""
    environ = os.environ if environ is None else environ
    current = {n: environ[n] for n in PINNABLE if n in environ}
    for mode, values in NUMERICS.items():
        if values == current:
            return mode
    return 'custom'


def run_threads(environ=None) -> int:
    """The torch threads a run of the current mode computes with: the
    mode's ``OMP_NUM_THREADS``, else :data:`RUN_THREADS`."""
    environ = os.environ if environ is None else environ
    value = environ.get('OMP_NUM_THREADS') or str(RUN_THREADS)
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f'OMP_NUM_THREADS={value!r}: expected a positive '
                         f'integer (or unset for {RUN_THREADS})')
    return threads


def _cpu_info() -> Dict[str, object]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name':
                    model = value.strip()
                elif key.strip() == 'flags':
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return dict(cpu=model, isa=[f for f in ISA_FLAGS if f in flags])


def numerics_record() -> Dict[str, object]:
    """What a result's arithmetic depended on: CPU model and ISA flags, the
    mode and its variables, torch's threads and chosen CPU capability, and
    the library versions. Written into each run's ``metrics.json``."""
    return dict(
        **_cpu_info(),
        numerics=numerics_mode(),
        env={n: os.environ.get(n) for n in PINNABLE},
        threads=torch.get_num_threads(),
        aten_capability=torch.backends.cpu.get_cpu_capability(),
        versions=dict(torch=torch.__version__, mmcv=mmcv.__version__,
                      mmdet=mmdet.__version__, mmengine=mmengine.__version__,
                      numpy=np.__version__,
                      python=platform.python_version()))
