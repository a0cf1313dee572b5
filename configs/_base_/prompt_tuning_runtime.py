# Shared by every config (a config that sets its own hooks extends this list:
# custom_hooks = _base_.custom_hooks + [...]). Registers the plugin and turns
# on its runner hooks (projects/sdpt/engine/hooks/, one per file):
# PromptTuningHook checks what trains, saves prompt-only checkpoints and
# completes them with the base weights on load; FiniteLossHook stops at the
# first non-finite loss; RandomStateHook keeps the random state in checkpoints
# so that a resumed run equals an uninterrupted one; TrainCostHook records
# step time and peak memory (train_cost.json in the work dir, read by
# tools/compare.py).
custom_imports = dict(imports=['projects.sdpt'], allow_failed_imports=False)
custom_hooks = [
    dict(type='PromptTuningHook'),
    dict(type='FiniteLossHook'),
    dict(type='RandomStateHook'),
    dict(type='TrainCostHook')
]
