# One learnable tensor per modality directly in the fusion inputs, no
# inverse projection: the ablation of SDPT's unified tokens, same K and layers.
# Otherwise exactly sdpt_glip_coco_1shot.py: same detector, data and schedule.
_base_ = '../sdpt_glip_coco_1shot.py'

model = dict(
    prompt=dict(
        _delete_=True,
        type='IndependentDualPrompt',
        num_tokens=84, layers=[0]))
experiment = dict(method='independent dual prompts')
