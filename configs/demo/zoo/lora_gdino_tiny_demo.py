# LoRA (peft), rank 16, alpha 16, on the six projections of every fusion
# attention.
# Otherwise exactly sdpt_gdino_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_tiny_demo.py'

model = dict(
    prompt=dict(
        _delete_=True,
        type='LoRA',
        rank=16,
        alpha=16,
        layers='all',
        head=False))
experiment = dict(method='LoRA (fusion attention)')
