# 16 shared CoOp context vectors before every class name, in BERT's
# input embedding space.
# Otherwise exactly sdpt_gdino_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_coco_1shot.py'

model = dict(
    prompt=dict(_delete_=True, type='TextContextPrompt', num_context=16))
experiment = dict(method='text prompt (CoOp)')
