# Learned class features (mmdet's projects/GroundingdinoPT): 4 vectors per
# class in the text encoder's output space take the place of its name.
# classes=None: the training set's classes, filled in when the config loads.
# Otherwise exactly sdpt_gdino_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_tiny_demo.py'

model = dict(
    prompt=dict(
        _delete_=True, type='LearnedClassFeatures', num_tokens=4,
        classes=None))
# mmdet's recipe: lr 0.1, weight decay 1e-4 (prompt_length 10).
optim_wrapper = dict(optimizer=dict(lr=0.1, weight_decay=1e-4))
experiment = dict(method='learned class features (mmdet GroundingdinoPT)')
