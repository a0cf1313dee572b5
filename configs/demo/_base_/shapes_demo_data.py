# Data and schedule of the demo configs (../sdpt_glip_tiny_demo.py,
# ../sdpt_gdino_tiny_demo.py): the synthetic shapes set written by
# tools/make_demo_assets.py, 128x128, and a short CPU schedule.
# Every name carries the `shapes_` prefix: a demo config lists this file next
# to an mmdet base that already defines train_dataloader, train_pipeline, ...,
# and mmengine refuses two sibling bases defining the same key. The demo
# configs assign the standard names from these, e.g.
#   train_dataloader = _base_.shapes_train_dataloader
# `_delete_=True` replaces the mmdet base's dict when it is assigned so.
shapes_data_root = 'data/demo/shapes/'
shapes_metainfo = dict(classes=('circle', 'square', 'triangle'))
shapes_img_scale = (128, 128)

shapes_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=shapes_img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'text',
                   'custom_entities'))
]
shapes_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=shapes_img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'text', 'custom_entities'))
]
shapes_train_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='CocoDataset',
        data_root=shapes_data_root,
        metainfo=shapes_metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=shapes_train_pipeline,
        return_classes=True))
shapes_val_dataloader = dict(
    _delete_=True,
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=shapes_data_root,
        metainfo=shapes_metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        test_mode=True,
        pipeline=shapes_test_pipeline,
        return_classes=True))
shapes_val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=shapes_data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False)

shapes_max_iters = 40
shapes_train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=shapes_max_iters,
    val_interval=shapes_max_iters)
shapes_param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
shapes_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.01),
    clip_grad=dict(max_norm=1.0, norm_type=2))
# merged into the mmdet base's default_hooks
shapes_default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=20, max_keep_ckpts=2))
shapes_log_processor = dict(by_epoch=False)
shapes_auto_scale_lr = dict(enable=False, base_batch_size=2)
