# BitFit: every bias term of the detector trains (backbone, text encoder,
# neck, fusion, head), nothing else.
# Otherwise exactly sdpt_gdino_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_coco_1shot.py'

model = dict(
    prompt=dict(_delete_=True, type='BitFit'))
experiment = dict(method='BitFit')
