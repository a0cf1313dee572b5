# SDPT on GLIP-L (the paper's model), COCO 1-shot (seed 3), evaluated on
# COCO val2017, with the paper's recipe: AdamW lr 1e-5, weight decay 0.01,
# batch 1, 2000 iterations, AMP, single scale 800x1333, gradient clipping 1.0.
#
# Data: data/coco/ as mmdet expects; write the 1-shot split first with
#   python tools/make_few_shot.py data/coco/annotations/instances_train2017.json \
#       --shots 1 --seed 3 \
#       --out data/coco/annotations/instances_train2017_1shot_seed3.json
# Weights: mmdet's released GLIP-L (load_from below) and bert-base-uncased.
#
# Prompt budget: the paper trains 0.04% of the parameters. 84 unified
# prototype tokens on the first fusion layer (84 x 2048 = 172,032 parameters)
# is 0.0400% of GLIP-L (tools/print_trainable.py prints the exact figures).
_base_ = [
    'mmdet::glip/glip_atss_swin-l_fpn_dyhead_16xb2_ms-2x_funtune_coco.py',
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
        num_tokens=84,
        layers=[0],
        mode='synchronous',
        init='uniform'))
# How tools/compare.py labels this run.
experiment = dict(method='SDPT', detector='GLIP-L', task='COCO 1-shot')

shots, seed = 1, 3
# The few-shot protocol (k in {1, 3, 5, 10} x seeds {3, 30, 300}):
# tools/train.py and tools/test.py derive the split file from shots / seed
# (projects/sdpt/datasets/benchmark_settings.py), e.g. --cfg-options shots=5
# seed=30 reads instances_train2017_5shot_seed30.json; runs go to
# work_dirs/<config>/<k>shot_seed<seed>/.
benchmark = 'coco'
train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='GTBoxSubOne_GLIP'),
    # single scale, as in the paper's recipe
    dict(
        type='FixScaleResize',
        scale=(800, 1333),
        keep_ratio=True,
        backend='pillow'),
    dict(type='RandomFlip_GLIP', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1)),
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
        _delete_=True,
        type=_base_.dataset_type,
        data_root=_base_.data_root,
        ann_file=f'annotations/instances_train2017_{shots}shot_seed{seed}.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        return_classes=True,
        backend_args=_base_.backend_args))

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
