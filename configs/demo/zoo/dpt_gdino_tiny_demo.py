# DPT: text prompt + VPT-deep + class-aware visual prompts (last Swin block)
# with their auxiliary multi-label loss.
# Otherwise exactly sdpt_gdino_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_tiny_demo.py'

model = dict(
    prompt=dict(
        _delete_=True,
        type='DPTPrompt',
        text=dict(num_context=4),
        visual=dict(num_tokens=4),
        num_candidates=10,
        class_aware_blocks=1,
        loss_weight=1.0))
experiment = dict(method='DPT')
