# Linear probing (GLIP's linear_prob): only the final prediction layers train
# (Grounding DINO: the classification and box-regression branches of the
# head).
# Otherwise exactly sdpt_gdino_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_coco_1shot.py'

model = dict(
    prompt=dict(_delete_=True, type='LinearProbing'))
experiment = dict(method='linear probing')
