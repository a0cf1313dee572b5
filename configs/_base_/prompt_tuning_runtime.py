# Shared by every prompt-tuning config: registers the plugin and turns on the
# hook that checks what trains, saves prompt-only checkpoints and completes
# them with the base weights on load; stops at the first non-finite loss; keeps
# the random state in checkpoints so that a resumed run equals an uninterrupted
# one (projects/sdpt/reliability.py); records step time and peak memory
# (train_cost.json in the work dir, read by tools/compare.py).
custom_imports = dict(imports=['projects.sdpt'], allow_failed_imports=False)
custom_hooks = [
    dict(type='PromptTuningHook'),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook'),
    dict(type='TrainCostHook')
]
