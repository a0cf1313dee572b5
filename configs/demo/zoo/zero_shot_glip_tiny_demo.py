# The pre-trained detector as it is, prompted with the class names only.
# Otherwise exactly sdpt_glip_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_glip_tiny_demo.py'

model = dict(prompt=None)
# Nothing trains: evaluate with tools/test.py CONFIG (no checkpoint).
evaluate_only = True
experiment = dict(method='zero-shot')
