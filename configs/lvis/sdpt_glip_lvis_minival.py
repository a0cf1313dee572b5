# SDPT on GLIP-L, few-shot LVIS v1: train on a k-shot split of LVIS train,
# evaluate on LVIS minival (mmdet's GLIP LVIS setting: LVISV1Dataset on the
# COCO images, LVISFixedAPMetric, which needs `pip install lvis`).
#
#   python tools/make_few_shot.py data/coco/annotations/lvis_v1_train.json \
#       --protocol                      # k in {1,3,5,10} x seeds {3,30,300}
#   python tools/train.py configs/lvis/sdpt_glip_lvis_minival.py \
#       --cfg-options shots=3 seed=30
#   # -> work_dirs/sdpt_glip_lvis_minival/lvis_minival/3shot_seed30/
#   (lvis_split=val: the full LVIS v1 val set)
#
# 1203 class names are far longer than the text encoder's 256 tokens:
# - test: mmdet's chunked prompts (test_cfg.chunked_size=40 classes a chunk,
#   as mmdet's GLIP / Grounding DINO LVIS configs; batch size 1);
# - training: ClassSubsetPrompt (projects/sdpt/datasets/transforms.py) gives each
#   image a caption of its positive classes plus random negatives that fit.
_base_ = '../sdpt_glip_coco_1shot.py'

benchmark = 'lvis'
lvis_split = 'minival'
shots, seed = 1, 3
data_root = 'data/coco/'
lang_model_name = 'bert-base-uncased'

model = dict(
    detector=dict(test_cfg=dict(max_per_img=300, chunked_size=40)))

train_pipeline = [
    dict(
        type='LoadImageFromFile',
        imdecode_backend='pillow',
        backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='GTBoxSubOne_GLIP'),
    dict(
        type='FixScaleResize',
        scale=(800, 1333),
        keep_ratio=True,
        backend='pillow'),
    dict(type='RandomFlip_GLIP', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1)),
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
# numpy < 1.24.0, as mmdet's LVIS configs note
val_evaluator = dict(
    _delete_=True,
    type='LVISFixedAPMetric',
    ann_file=data_root +
    'annotations/lvis_v1_minival_inserted_image_name.json')
test_evaluator = val_evaluator

# The runtime's hooks, plus the per-class AP report under <work_dir>/report/.
custom_hooks = _base_.custom_hooks + [dict(type='EvalReportHook')]
