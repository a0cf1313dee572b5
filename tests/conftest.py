"""The fixtures every test module may use: the offline demo assets
(``demo_root``) and the same directory ready for the tools (``workspace``).
Helpers that are not fixtures are in helpers.py."""
import os
import warnings

import pytest

# Before the imports below: importing mmdet's dependencies warns.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

# REPO_ROOT: test_transfer.py, test_compare.py and test_docs.py import it from
# here.
from helpers import REPO_ROOT, run  # noqa: E402, F401

from projects.sdpt.datasets.synthetic.demo_assets import (  # noqa: E402
    make_demo_assets,
)


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """A directory laid out like the repo's data/demo (made offline)."""
    root = tmp_path_factory.mktemp('demo')
    make_demo_assets(str(root / 'data' / 'demo'))
    return root


@pytest.fixture(scope='session')
def workspace(demo_root):
    """``demo_root`` with the demo detectors' base weights as well
    (tools/make_demo_assets.py): a scratch directory laid out like the
    repository, where the tools run as a user runs them."""
    run('make_demo_assets.py', cwd=demo_root)
    return demo_root
