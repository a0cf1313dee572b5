# SDPT with the public reference code's masking: the text-side copy is
# hidden from image queries.
# Otherwise exactly sdpt_glip_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_glip_coco_1shot.py'

model = dict(prompt=dict(mode='reference'))
experiment = dict(method='SDPT (reference masking)')
