"""Runner hooks (one per file in ``hooks/``), the safe checkpoint loaders and
the prompt checkpoint format with its card (``prompt_card.py``)."""
from . import checkpoint_loading  # noqa: F401  (registers the loaders)
from .hooks import *  # noqa: F401, F403
from .prompt_card import BaseWeightsMismatch  # noqa: F401
