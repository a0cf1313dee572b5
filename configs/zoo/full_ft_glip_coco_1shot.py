# Every parameter trains (the upper end of the budget); same data and schedule and recipe.
# Otherwise exactly sdpt_glip_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_glip_coco_1shot.py'

model = dict(prompt=None, extra_trainable=['.*'])
experiment = dict(method='full fine-tuning')
