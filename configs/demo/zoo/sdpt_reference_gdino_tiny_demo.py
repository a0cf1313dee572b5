# SDPT with the public reference code's masking: the text-side copy is
# hidden from image queries.
# Otherwise exactly sdpt_gdino_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_tiny_demo.py'

model = dict(prompt=dict(mode='reference'))
experiment = dict(method='SDPT (reference masking)')
