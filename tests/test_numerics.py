"""The numerics modes of a run (projects/sdpt/utils/numerics.py): what each
sets in the environment, that torch follows it in a fresh process, and what
a run records of its arithmetic."""
import json
import os
import subprocess
import sys

import pytest
from helpers import REPO_ROOT

from projects.sdpt.utils.numerics import (
    NUMERICS,
    PINNABLE,
    numerics_mode,
    numerics_record,
    run_threads,
    set_numerics,
)


def test_each_mode_sets_its_variables_and_removes_the_others():
    env = {'ATEN_CPU_CAPABILITY': 'avx512', 'PATH': '/bin'}
    assert set_numerics('native', env) == {}
    assert env == {'PATH': '/bin'}
    assert numerics_mode(env) == 'native'
    set_numerics('aten-default', env)
    assert env['ATEN_CPU_CAPABILITY'] == 'default'
    assert env['MKL_CBWR'] == 'AVX2' and env['PATH'] == '/bin'
    for mode in NUMERICS:
        set_numerics(mode, env)
        assert numerics_mode(env) == mode
    set_numerics('pinned', env)
    env['MKL_CBWR'] = 'AUTO'
    assert numerics_mode(env) == 'custom'
    with pytest.raises(ValueError, match='choose one of'):
        set_numerics('fast', env)


def _record_in_child(mode):
    env = dict(os.environ)
    set_numerics(mode, env)
    code = ('import json; from projects.sdpt.utils.numerics import '
            'numerics_record; print(json.dumps(numerics_record()))')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif('avx2' not in numerics_record()['isa'],
                    reason='the pinned mode caps at AVX2, which this CPU '
                    'does not have')
def test_torch_follows_the_mode_in_a_fresh_process():
    pinned = _record_in_child('pinned')
    assert pinned['numerics'] == 'pinned'
    assert pinned['aten_capability'] == 'AVX2'
    assert pinned['env'] == {n: NUMERICS['pinned'].get(n) for n in PINNABLE}
    assert _record_in_child('aten-default')['aten_capability'] == 'DEFAULT'


def test_the_record_names_cpu_versions_and_threads():
    record = numerics_record()
    assert record['cpu'] and record['threads'] >= 1
    assert set(record['versions']) >= {'torch', 'mmcv', 'mmdet', 'numpy'}
    json.dumps(record)  # written into metrics.json


def test_one_thread_per_run_unless_the_mode_sets_two():
    env = {'OMP_NUM_THREADS': '8'}  # the user's, not a mode's
    for mode in NUMERICS:
        set_numerics(mode, env)
        assert run_threads(env) == (2 if mode == 'threads-2' else 1), mode
    assert env['ATEN_CPU_CAPABILITY'] == 'avx2'  # otherwise pinned
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='x'"):
        run_threads({'OMP_NUM_THREADS': 'x'})
    with pytest.raises(ValueError, match='positive integer'):
        run_threads({'OMP_NUM_THREADS': '0'})


def test_a_fresh_process_runs_the_modes_thread_count():
    assert _record_in_child('threads-2')['threads'] == 2
    assert _record_in_child('pinned')['threads'] >= 1
