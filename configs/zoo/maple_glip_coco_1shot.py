# MaPLe-style coupled prompts: 2 CoOp context vectors before every class
# name, and in every block of the first 2 Swin stages 2 visual tokens made
# from them by a learned linear coupling (one per block).
# Otherwise exactly sdpt_glip_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_glip_coco_1shot.py'

model = dict(
    prompt=dict(_delete_=True, type='MaPLePrompt', num_context=2, stages=2))
experiment = dict(method='MaPLe (coupled prompts)')
