"""Checkpoints: the safe loaders of mmengine checkpoints under torch >= 2.6
(``safe_loading.py``, registered on import) and the prompt checkpoint format
with its card (``prompt_checkpoint.py``)."""
from .prompt_checkpoint import (
                                BaseWeightsMismatch,
                                PromptCheckpointMismatch,
                                complete_prompt_checkpoint,
                                load_prompt_checkpoint,
)
from .safe_loading import (
                                CorruptCheckpointError,
                                UntrustedCheckpointError,
                                register_safe_checkpoint_loaders,
)

__all__ = [
    'BaseWeightsMismatch', 'PromptCheckpointMismatch',
    'complete_prompt_checkpoint', 'load_prompt_checkpoint',
    'CorruptCheckpointError', 'UntrustedCheckpointError',
    'register_safe_checkpoint_loaders'
]
