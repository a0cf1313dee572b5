# SDPT on GLIP-T(C), otherwise as sdpt_glip_coco_1shot.py (GLIP-L).
# Prompt budget: 45 tokens on the first fusion layer (45 x 2048 = 92,160) is
# 0.0397% of GLIP-T(C)'s 231.9M parameters (tools/print_trainable.py).
_base_ = './sdpt_glip_coco_1shot.py'

model = dict(
    detector=dict(
        backbone=dict(
            embed_dims=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            drop_path_rate=0.2),
        neck=dict(in_channels=[192, 384, 768]),
        bbox_head=dict(num_dyhead_blocks=6)),
    prompt=dict(num_tokens=45))
experiment = dict(detector='GLIP-T(C)')

load_from = 'https://download.openmmlab.com/mmdetection/v3.0/glip/glip_tiny_c_mmdet-2fc427dd.pth'  # noqa
