# One learnable tensor per modality directly in the fusion inputs, no
# inverse projection: the ablation of SDPT's unified tokens, same K and layers.
# Otherwise exactly sdpt_gdino_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_gdino_coco_1shot.py'

model = dict(
    prompt=dict(
        _delete_=True,
        type='IndependentDualPrompt',
        num_tokens=68, layers=[0]))
experiment = dict(method='independent dual prompts')
