"""Imported first by every tool: the repository root on ``sys.path`` (so
``projects.sdpt`` imports from any working directory) and known noise off.
The tools' logic lives in the package; what they share is
``projects/sdpt/cli.py``. The root is computed here, not imported from
``projects.sdpt.utils.paths``: the package is importable only after it."""
import os
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
# mmengine imports pkg_resources (kept below setuptools 81, see
# requirements.txt), which warns on every import.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
