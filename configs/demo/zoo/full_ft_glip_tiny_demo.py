# Every parameter trains (the upper end of the budget); same data and schedule; a lower learning rate than the prompts.
# Otherwise exactly sdpt_glip_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_glip_tiny_demo.py'

model = dict(prompt=None, extra_trainable=['.*'])
optim_wrapper = dict(optimizer=dict(lr=1e-4))
experiment = dict(method='full fine-tuning')
