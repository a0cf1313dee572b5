# SDPT on Grounding DINO Swin-T, COCO 1-shot (seed 3), evaluated on COCO
# val2017, with the same recipe as sdpt_glip_coco_1shot.py: AdamW lr 1e-5,
# weight decay 0.01, batch 1, 2000 iterations, AMP, single scale 800x1333,
# gradient clipping 1.0. The fine-tune config's activation checkpointing
# (encoder.num_cp=6) stays on; the plugin makes it pass prompt gradients.
#
# Data: data/coco/ with the split written by tools/make_few_shot.py (see
# sdpt_glip_coco_1shot.py). Weights: mmdet's released Grounding DINO Swin-T
# (load_from below) and bert-base-uncased.
#
# Prompt budget: 68 tokens on the first fusion layer (68 x 1024 = 69,632) is
# 0.04% of the model (tools/print_trainable.py prints the exact figures).
_base_ = [
    'mmdet::grounding_dino/grounding_dino_swin-t_finetune_16xb2_1x_coco.py',
    './_base_/prompt_tuning_runtime.py'
]

model = dict(
    _delete_=True,
    type='PromptTunedDetector',
    detector=_base_.model,
    # read by mmdet's init_detector (options merged into detector.backbone)
    backbone=dict(),
    prompt=dict(
        type='SDPTPrompt',
        num_tokens=68,
        layers=[0],
        mode='synchronous',
        init='uniform'))
# How tools/compare.py labels this run.
experiment = dict(method='SDPT', detector='Grounding DINO-T', task='COCO 1-shot')

shots, seed = 1, 3
# The few-shot protocol (k in {1, 3, 5, 10} x seeds {3, 30, 300}):
# tools/train.py and tools/test.py derive the split file from shots / seed
# (projects/sdpt/datasets/benchmark_settings.py), e.g. --cfg-options shots=5
# seed=30 reads instances_train2017_5shot_seed30.json; runs go to
# work_dirs/<config>/<k>shot_seed<seed>/.
benchmark = 'coco'
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    # single scale, as in the paper's recipe
    dict(type='FixScaleResize', scale=(800, 1333), keep_ratio=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'text',
                   'custom_entities'))
]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        ann_file=f'annotations/instances_train2017_{shots}shot_seed{seed}.json',
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))

max_iters = 2000
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0, norm_type=2))
default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=500,
        max_keep_ckpts=2),
    logger=dict(type='LoggerHook', interval=50))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=1)
