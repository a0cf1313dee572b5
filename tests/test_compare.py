"""tools/compare.py on the tiny Grounding DINO demo: a grid of a zero-shot
and a prompt-tuned config, the tables and plot, and resuming a broken grid."""
import csv
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

TOOL = osp.join(REPO_ROOT, 'tools', 'compare.py')
CONFIGS = [
    osp.join(REPO_ROOT, 'configs/demo/zoo/zero_shot_gdino_tiny_demo.py'),
    osp.join(REPO_ROOT, 'configs/demo/sdpt_gdino_tiny_demo.py'),
]
SHORT = [
    '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=100',
    'default_hooks.checkpoint.interval=1'
]


def compare(cwd, work_dir):
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    proc = subprocess.run(
        [sys.executable, TOOL] + CONFIGS +
        ['--seeds', '0', '--work-dir', str(work_dir)] + SHORT,
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_grid_tables_plot_and_resume(demo_root):
    subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'make_demo_assets.py')],
        cwd=demo_root, check=True, capture_output=True)
    work_dir = demo_root / 'compare'
    out = compare(demo_root, work_dir)
    assert '[test] zero_shot_gdino_tiny_demo' in out
    assert '[train] sdpt_gdino_tiny_demo seed 0' in out
    with open(work_dir / 'comparison.csv') as f:
        rows = {r['method']: r for r in csv.DictReader(f)}
    assert set(rows) == {'zero-shot', 'SDPT'}
    assert float(rows['zero-shot']['trainable']) == 0
    sdpt = rows['SDPT']
    assert int(float(sdpt['trainable'])) == 32768  # 16 tokens x 1024 x 2
    assert 0 < float(sdpt['percent']) < 1
    assert float(sdpt['step_time_s']) > 0
    assert float(sdpt['peak_memory_mib']) > 0
    assert 0 < float(sdpt['checkpoint_mb']) < 2
    assert float(sdpt['AP']) >= 0
    table = (work_dir / 'comparison.md').read_text()
    assert table.startswith('| method | detector | task | AP |')
    assert (work_dir / 'ap_vs_trainable_params.png').stat().st_size > 1000

    # Done runs are skipped.
    out = compare(demo_root, work_dir)
    assert '[train]' not in out and '[test]' not in out
    # A run killed after its last checkpoint resumes instead of restarting.
    run_dir = work_dir / 'sdpt_gdino_tiny_demo' / 'seed0'
    os.remove(run_dir / 'train_done')
    os.remove(run_dir / 'metrics.json')
    os.remove(run_dir / 'iter_2.pth')
    with open(run_dir / 'last_checkpoint', 'w') as f:
        f.write(str(run_dir / 'iter_1.pth'))
    out = compare(demo_root, work_dir)
    assert '[resume] sdpt_gdino_tiny_demo seed 0' in out
    assert (run_dir / 'iter_2.pth').exists()
    assert '[test] sdpt_gdino_tiny_demo seed 0' in out
