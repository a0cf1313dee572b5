# GLIP's language prompt tuning (language_prompt_v2): a zero-initialised
# learnable offset per text position (the first 256) on the text encoder's
# output features, before the fusion; GLIP's recipe: lr 0.05, weight decay 0.25.
# Otherwise exactly sdpt_glip_tiny_demo.py: same detector, data and schedule;
# only the optimizer's lr and weight decay are GLIP's.
_base_ = '../sdpt_glip_tiny_demo.py'

model = dict(
    prompt=dict(_delete_=True, type='LanguagePromptOffset', num_positions=256))
optim_wrapper = dict(optimizer=dict(lr=0.05, weight_decay=0.25))
experiment = dict(method='language prompt (GLIP)')
