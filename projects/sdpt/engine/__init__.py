"""Running with mmengine: the project's way of loading a config
(``config.py``) and the runner hooks (one per file in ``hooks/``)."""
from .config import load_config
from .hooks import *  # noqa: F401, F403
from .hooks import __all__ as _hooks

__all__ = ['load_config'] + _hooks
