# SDPT on a tiny Grounding DINO (two encoder fusion layers, fairscale
# activation checkpointing on, as in the Swin-T fine-tune config), trained and
# evaluated fully offline on CPU on the synthetic shapes set written by
# tools/make_demo_assets.py.
# The base weights are random (saved once so train and test share them): the
# losses and AP show that the pipeline works, not what SDPT achieves.
_base_ = [
    'mmdet::grounding_dino/grounding_dino_swin-t_finetune_16xb2_1x_coco.py',
    '../_base_/prompt_tuning_runtime.py'
]
demo_root = 'data/demo/'
lang_model_name = demo_root + 'bert'

detector = _base_.model
detector.num_queries = 100
detector.language_model.name = lang_model_name
detector.backbone.update(
    embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
    drop_path_rate=0.0, with_cp=True)  # as the real fine-tune config
detector.neck.in_channels = [64, 128, 256]
detector.encoder.update(num_layers=2, num_cp=2)
detector.encoder.layer_cfg.ffn_cfg.feedforward_channels = 256
detector.encoder.text_layer_cfg.ffn_cfg.feedforward_channels = 256
detector.decoder.num_layers = 2
detector.decoder.layer_cfg.ffn_cfg.feedforward_channels = 256
detector.bbox_head.num_classes = 3
detector.dn_cfg.group_cfg.num_dn_queries = 20

model = dict(
    _delete_=True,
    type='PromptTunedDetector',
    detector=detector,
    prompt=dict(type='SDPTPrompt', num_tokens=16, layers='all',
                mode='synchronous'))
# How tools/compare.py labels this run.
experiment = dict(method='SDPT', detector='Grounding DINO (tiny)', task='shapes (demo)')

base_weights = demo_root + 'gdino_tiny_base.pth'
load_from = base_weights

# ---- data: the synthetic shapes set (tools/make_demo_assets.py), 128x128,
# a short CPU schedule. mmengine refuses a shared data base here (its keys
# would duplicate the mmdet base's), so the two demo configs repeat it.
dataset_type = 'CocoDataset'
data_root = 'data/demo/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'))
img_scale = (128, 128)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'text',
                   'custom_entities'))
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'text', 'custom_entities'))
]
train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline,
        return_classes=True))
val_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=test_pipeline,
        return_classes=True))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator

max_iters = 40
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0, norm_type=2))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=20, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=2)
