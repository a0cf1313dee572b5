# Residual bottleneck adapters (width 64, zero-initialised up-projection) on
# the image and text outputs of every fusion attention.
# Otherwise exactly sdpt_gdino_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_tiny_demo.py'

model = dict(
    prompt=dict(
        _delete_=True,
        type='FusionBottleneckAdapter',
        bottleneck=64,
        layers='all'))
experiment = dict(method='fusion adapter')
