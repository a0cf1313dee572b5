"""The toolbox's version, recorded in every prompt card."""
import functools
import subprocess

from .utils.paths import REPO_ROOT

__version__ = '0.5.0'


@functools.lru_cache(maxsize=None)
def toolbox_version() -> str:
    """``__version__``, plus the git commit when the package runs from a
    checkout (``0.5.0+g1a2b3c4``; ``-dirty`` with uncommitted changes), so a
    card names the code that wrote it."""
    try:
        commit = subprocess.run(
            ['git', 'describe', '--always', '--dirty', '--abbrev=7'],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return __version__
    if commit.returncode != 0 or not commit.stdout.strip():
        return __version__
    return f'{__version__}+g{commit.stdout.strip()}'
