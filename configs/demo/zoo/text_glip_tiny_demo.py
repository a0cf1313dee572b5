# 4 shared CoOp context vectors before every class name, in BERT's
# input embedding space.
# Otherwise exactly sdpt_glip_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_glip_tiny_demo.py'

model = dict(
    prompt=dict(_delete_=True, type='TextContextPrompt', num_context=4))
experiment = dict(method='text prompt (CoOp)')
