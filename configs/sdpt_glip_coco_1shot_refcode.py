# The public SDPT reference command on GLIP-L: K=700 unified prototype tokens
# on every fusion layer, each layer its own set, and the reference code's
# masking (the text-side copy is hidden from image queries). Data and recipe
# as in sdpt_glip_coco_1shot.py. Unlike the reference code, only the prompts
# train (its command also trains the DyHead towers, the head's BERT layers and
# the prediction layers); tools/print_trainable.py prints the true figure.
_base_ = './sdpt_glip_coco_1shot.py'

model = dict(
    prompt=dict(num_tokens=700, layers='all', mode='reference'))
experiment = dict(method='SDPT (reference code, K=700)')
