# 10 VPT-deep tokens in every Swin block (extra keys/values of every window).
# Otherwise exactly sdpt_gdino_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_coco_1shot.py'

model = dict(
    prompt=dict(_delete_=True, type='VisualDeepPrompt', num_tokens=10))
experiment = dict(method='visual prompt (VPT-deep)')
