"""The linter (ruff, configured in pyproject.toml) passes on the package,
the tools and the tests."""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff():
    beside = pathlib.Path(sys.executable).with_name('ruff')
    return str(beside) if beside.exists() else shutil.which('ruff')


@pytest.mark.skipif(_ruff() is None, reason='ruff is not installed '
                    '(requirements.txt pins it; scripts/setup_env.sh '
                    'installs it)')
def test_ruff_check_passes():
    proc = subprocess.run(
        [_ruff(), 'check', '--no-cache', 'projects', 'tools', 'tests'],
        cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
