# Linear probing (GLIP's linear_prob): only the final prediction layers train
# (GLIP: the head's box and centerness convolutions, the text projection of
# the alignment score and its scale and biases).
# Otherwise exactly sdpt_glip_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_glip_coco_1shot.py'

model = dict(
    prompt=dict(_delete_=True, type='LinearProbing'))
experiment = dict(method='linear probing')
