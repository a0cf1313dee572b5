"""Runner hooks (one per file in ``hooks/``) and the safe checkpoint loaders."""
from . import checkpoint_loading  # noqa: F401  (registers the loaders)
from .hooks import *  # noqa: F401, F403
