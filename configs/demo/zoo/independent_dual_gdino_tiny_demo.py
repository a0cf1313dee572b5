# One learnable tensor per modality directly in the fusion inputs, no
# inverse projection: the ablation of SDPT's unified tokens, same K and layers.
# Otherwise exactly sdpt_gdino_tiny_demo.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_tiny_demo.py'

model = dict(
    prompt=dict(
        _delete_=True,
        type='IndependentDualPrompt',
        num_tokens=16, layers='all'))
experiment = dict(method='independent dual prompts')
