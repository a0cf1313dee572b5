# SDPT on Grounding DINO Swin-T, few-shot LVIS v1 with LVIS minival
# evaluation; see sdpt_glip_lvis_minival.py for the protocol and commands.
# Chunked prompts at test time as mmdet's Grounding DINO LVIS configs
# (chunked_size=40, max_per_img=300); ClassSubsetPrompt in training.
_base_ = '../sdpt_gdino_coco_1shot.py'

benchmark = 'lvis'
lvis_split = 'minival'
shots, seed = 1, 3
data_root = 'data/coco/'
lang_model_name = 'bert-base-uncased'

model = dict(
    detector=dict(test_cfg=dict(max_per_img=300, chunked_size=40)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FixScaleResize', scale=(800, 1333), keep_ratio=True),
    dict(type='ClassSubsetPrompt', tokenizer=lang_model_name,
         max_tokens=256),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'text',
                   'custom_entities'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1)  # chunked prompts take one image
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='LVISFixedAPMetric',
    ann_file=data_root +
    'annotations/lvis_v1_minival_inserted_image_name.json')
test_evaluator = val_evaluator

# The runtime's hooks, plus the per-class AP report under <work_dir>/report/.
custom_hooks = _base_.custom_hooks + [dict(type='EvalReportHook')]
