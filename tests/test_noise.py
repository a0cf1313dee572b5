"""The noise study's table (projects/sdpt/experiments/noise.py): spread over
seeds beside the spread under perturbed numerics, from work dirs of one
protocol each."""
import json
import os.path as osp

import pytest

from projects.sdpt.experiments.noise import (
    noise_rows,
    noise_rows_from_csv,
    noise_summary,
    noise_table,
    schedule_label,
    verdict_table,
    write_noise_report,
)
from projects.sdpt.experiments.transfer.plan import check_protocol
from projects.sdpt.utils.io import atomic_write_json
from tests.helpers import run


def _suite(root, numerics, aps, role='report', key='sdpt', method='SDPT',
           cpu=None, folder=None, iters=200, det='gdino'):
    work = str(root / (folder or numerics))
    if not osp.exists(osp.join(work, 'protocol.json')):
        check_protocol(work, dict(numerics=numerics, schedule='constant',
                                  iters=iters))
    platform = dict(platform=dict(cpu=cpu)) if cpu else {}
    for seed, ap in aps.items():
        atomic_write_json(
            dict(detector=dict(gdino='Grounding DINO (tiny)',
                               glip='GLIP (tiny)')[det],
                 method=method, key=key, shift='realignment', shots=10,
                 lr=1.0, seed=seed, AP=ap, role=role, **platform),
            osp.join(work, det, 'realignment', key,
                     f'k10_seed{seed}_{role}', 'metrics.json'))
    return work


def test_spread_over_seeds_beside_spread_under_perturbation(tmp_path):
    pinned = _suite(tmp_path, 'pinned', {3: 0.70, 30: 0.80, 300: 0.90})
    perturbed = _suite(tmp_path, 'aten-default', {3: 0.60, 30: 0.85})
    threads = _suite(tmp_path, 'threads-2', {300: 0.93})
    # a learning-rate trial at the same lr is not a reported run
    _suite(tmp_path, 'pinned', {1: 0.10}, role='selection')
    rows = noise_rows([pinned, perturbed, threads])
    assert {r['numerics'] for r in rows} == {'pinned', 'aten-default',
                                             'threads-2'}
    [record] = noise_table(rows)
    # the modes ran different seeds: each mean says over how many
    assert record['AP pinned'] == '0.800 ± 0.100 (n=3)'
    # only the seeds asked for
    [three] = noise_table(noise_rows([pinned, perturbed, threads],
                                     seeds=[3, 30]))
    assert three['AP pinned'] == '0.750 ± 0.071'  # the same two seeds
    assert 'threads-2 - pinned, max abs' not in three
    # the pinned column first, whatever order the folders came in
    [reordered] = noise_table(noise_rows([perturbed, threads, pinned]))
    assert [k for k in reordered if k.startswith('AP ')] == [
        'AP pinned', 'AP aten-default', 'AP threads-2']
    assert record['AP aten-default'] == '0.725 ± 0.177 (n=2)'
    assert record['seed std (pinned)'] == '0.100'
    # aten-default: seed 3 -0.10, seed 30 +0.05; threads-2: seed 300 +0.03
    assert record['perturbed - pinned, mean abs'] == '0.060'
    assert record['perturbed - pinned, max abs'] == '0.100'
    assert record['aten-default - pinned, max abs'] == '0.100'
    assert record['threads-2 - pinned, max abs'] == '0.030'
    out = tmp_path / 'out'
    markdown = write_noise_report(rows, str(out))
    assert markdown.count('\n') == 3
    csv_lines = (out / 'noise.csv').read_text().splitlines()
    assert len(csv_lines) == 7
    assert csv_lines[0].startswith('schedule,numerics,detector,method,key,')
    report = json.loads((out / 'noise.json').read_text())
    assert report == \
        {'methods': {'SDPT': {'lr': '1', 'constant': {
            'seeds': '0.800 ± 0.100 (n=3)', 'perturbed_max': '0.100',
            'by_mode': {'aten-default': '0.100', 'threads-2': '0.030'}}}},
         'verdicts': []}
    # the report rebuilt from its own CSV is the same report
    rebuilt = tmp_path / 'rebuilt'
    assert write_noise_report(noise_rows_from_csv(str(out / 'noise.csv')),
                              str(rebuilt)) == markdown
    assert json.loads((rebuilt / 'noise.json').read_text()) == report
    assert (rebuilt / 'noise.csv').read_text() == \
        (out / 'noise.csv').read_text()
    assert len(noise_rows_from_csv(str(out / 'noise.csv'), seeds=[3])) == 2


def test_verdicts_per_mode_on_the_seeds_every_mode_ran(tmp_path):
    """SDPT against CoOp: clearly higher pinned; under the perturbation
    one seed collapses and the interval takes in zero. Seed 300 has no
    perturbed CoOp run, so no mode pairs on it."""
    sdpt = {3: 0.80, 30: 0.81, 300: 0.79}
    pinned = _suite(tmp_path, 'pinned', sdpt)
    _suite(tmp_path, 'pinned', {3: 0.60, 30: 0.62, 300: 0.0}, key='text',
           method='CoOp')
    perturbed = _suite(tmp_path, 'aten-default', sdpt)
    _suite(tmp_path, 'aten-default', {3: 0.60, 30: 0.95}, key='text',
           method='CoOp')
    [record] = verdict_table(noise_rows([pinned, perturbed]))
    assert record['method'] == 'CoOp' and record['seeds'] == 2
    assert record['pinned SDPT - it'].startswith('+0.195 ± ')
    assert record['pinned verdict'] == 'higher'
    assert record['aten-default SDPT - it'].startswith('+0.030 ± ')
    assert record['aten-default verdict'] == 'no detectable difference'
    assert record['same verdict'] == 'no'


def test_runs_of_another_cpu_model_are_one_more_mode(tmp_path):
    """Pinned runs made on another CPU model than the first pinned folder's
    are compared with it as a mode of their own; perturbed runs on the
    reference's CPU keep their mode's name."""
    intel = _suite(tmp_path, 'pinned', {3: 0.70, 30: 0.80}, cpu='Intel Xeon')
    amd = _suite(tmp_path, 'pinned', {3: 0.75, 30: 0.78}, cpu='AMD EPYC',
                 folder='amd')
    aten = _suite(tmp_path, 'aten-default', {3: 0.72}, cpu='Intel Xeon')
    rows = noise_rows([intel, amd, aten])
    assert {r['numerics'] for r in rows} == {
        'pinned', 'pinned on AMD EPYC', 'aten-default'}
    [record] = noise_table(rows)
    assert record['pinned on AMD EPYC - pinned, max abs'] == '0.050'
    assert record['aten-default - pinned, max abs'] == '0.020'


def test_restored_runs_do_not_decide_a_folders_cpu(tmp_path):
    """Runs restored without a platform record, beside fewer runs made on
    the AMD machine, leave the folder's CPU to the recorded runs: a rerun
    on that machine is a plain perturbation."""
    suite = _suite(tmp_path, 'pinned', {3: 0.70, 30: 0.80, 300: 0.9})
    _suite(tmp_path, 'pinned', {3: 0.30, 30: 0.40}, det='glip',
           cpu='AMD EPYC')
    rerun = _suite(tmp_path, 'aten-default', {3: 0.31}, det='glip',
                   cpu='AMD EPYC')
    rows = noise_rows([suite, rerun])
    assert {r['numerics'] for r in rows} == {'pinned', 'aten-default'}


def test_a_longer_schedule_is_a_schedule_of_its_own(tmp_path):
    pinned = _suite(tmp_path, 'pinned', {3: 0.70})
    perturbed = _suite(tmp_path, 'aten-default', {3: 0.60})
    longer = _suite(tmp_path, 'pinned', {3: 0.75}, folder='long', iters=400)
    longer_perturbed = _suite(tmp_path, 'aten-default', {3: 0.74},
                              folder='long-aten', iters=400)
    table = noise_table(noise_rows([pinned, perturbed, longer,
                                    longer_perturbed]))
    assert [(r['schedule'], r['perturbed - pinned, max abs'])
            for r in table] == [('constant', '0.100'),
                                ('constant, 400 iterations', '0.010')]


def test_a_work_dir_without_a_protocol_is_refused(tmp_path):
    with pytest.raises(ValueError, match='protocol.json'):
        noise_rows([str(tmp_path)])


def test_runs_without_a_counterpart_are_left_out(tmp_path):
    pinned = _suite(tmp_path, 'pinned', {3: 0.70})
    _suite(tmp_path, 'pinned', {3: 0.40}, key='bitfit', method='BitFit')
    perturbed = _suite(tmp_path, 'aten-default', {3: 0.60})
    [record] = noise_table(noise_rows([pinned, perturbed]))
    assert record['method'] == 'SDPT'
    with pytest.raises(ValueError, match='no run has a counterpart'):
        write_noise_report(noise_rows([pinned]), str(tmp_path / 'out'))


def test_the_tool_rebuilds_a_report_from_its_csv(tmp_path):
    pinned = _suite(tmp_path, 'pinned', {3: 0.70, 30: 0.80})
    perturbed = _suite(tmp_path, 'aten-default', {3: 0.60, 30: 0.85})
    first = run('noise_report.py', pinned, perturbed, '--out',
                tmp_path / 'first').stdout
    assert '0.750 ± 0.071' in first
    assert run('noise_report.py', '--from-csv',
               tmp_path / 'first' / 'noise.csv', '--out',
               tmp_path / 'again').stdout == first
    both = run('noise_report.py', pinned, '--from-csv',
               tmp_path / 'first' / 'noise.csv', ok=False)
    assert both.code == 2 and 'RESULTS_DIRs or --from-csv' in both.out
    empty = run('noise_report.py', str(tmp_path / 'first' / 'noise.csv'),
                ok=False)
    assert empty.code == 1 and 'protocol.json' in empty.out


def test_a_csv_without_a_column_a_report_reads_is_refused(tmp_path):
    path = tmp_path / 'noise.csv'
    path.write_text('schedule,numerics,method,shift,shots,lr,seed,AP\n')
    with pytest.raises(ValueError, match=r'noise.csv: no column detector, '
                       r'key, dev_AP'):
        noise_rows_from_csv(str(path))
    # a value that is not a number names its line
    columns = ('schedule,numerics,detector,method,key,shift,shots,lr,seed,'
               'dev_AP,AP,AP50,loss_first,loss_last')
    path.write_text(columns + '\ncosine,pinned,GLIP (tiny),SDPT,sdpt,'
                    'realignment,ten,1.0,3,0.5,0.5,0.6,2.0,1.0\n')
    with pytest.raises(ValueError, match='noise.csv, line 2: invalid'):
        noise_rows_from_csv(str(path))


def test_the_same_method_on_two_detectors_is_two_cells(tmp_path):
    pinned = _suite(tmp_path, 'pinned', {3: 0.70, 30: 0.80})
    _suite(tmp_path, 'pinned', {3: 0.30, 30: 0.40}, det='glip')
    perturbed = _suite(tmp_path, 'aten-default', {3: 0.72, 30: 0.78})
    _suite(tmp_path, 'aten-default', {3: 0.20, 30: 0.40}, det='glip')
    table = noise_table(noise_rows([pinned, perturbed]))
    by_detector = {r['detector']: r for r in table}
    assert by_detector['Grounding DINO (tiny)']['AP pinned'] == \
        '0.750 ± 0.071'
    assert by_detector['GLIP (tiny)'][
        'perturbed - pinned, max abs'] == '0.100'
    assert set(noise_summary(table)['methods']) == {
        'SDPT (GLIP (tiny))', 'SDPT (Grounding DINO (tiny))'}


def test_another_weight_decay_rule_is_another_setting():
    assert schedule_label(dict(schedule='cosine', iters=200)) == 'cosine'
    assert schedule_label(dict(schedule='cosine', iters=400,
                               weight_decay='recipe')) == \
        'cosine, 400 iterations, recipe weight decay'
