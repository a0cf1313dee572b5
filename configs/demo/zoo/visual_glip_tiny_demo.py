# 4 VPT-deep tokens in every Swin block (extra keys/values of every window).
# Otherwise exactly sdpt_glip_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_glip_tiny_demo.py'

model = dict(
    prompt=dict(_delete_=True, type='VisualDeepPrompt', num_tokens=4))
experiment = dict(method='visual prompt (VPT-deep)')
