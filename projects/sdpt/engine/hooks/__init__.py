"""mmengine hooks of the project (mmdet ``HOOKS``), one per file."""
from .atomic_checkpoint_hook import (
    AtomicCheckpointHook,
    use_atomic_checkpoints,
)
from .eval_report_hook import EvalReportHook
from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .progress_hook import ProgressHook
from .prompt_tuning_hook import PromptTuningHook
from .random_state_hook import RandomStateHook
from .train_cost_hook import TrainCostHook
from .weight_averaging_hook import WeightAveragingHook

__all__ = [
    'AtomicCheckpointHook', 'use_atomic_checkpoints', 'EvalReportHook',
    'FiniteLossHook', 'NonFiniteLossError',
    'ProgressHook', 'PromptTuningHook', 'RandomStateHook', 'TrainCostHook',
    'WeightAveragingHook'
]
