# SDPT on a tiny GLIP (fusion and activation checkpointing on, as in GLIP-T(B),
# T(C) and L), trained and evaluated fully offline on CPU on the synthetic
# shapes set written by tools/make_demo_assets.py.
# The base weights are random (saved once so train and test share them): the
# losses and AP show that the pipeline works, not what SDPT achieves.
_base_ = [
    'mmdet::glip/glip_atss_swin-t_b_fpn_dyhead_16xb2_ms-2x_funtune_coco.py',
    '../_base_/prompt_tuning_runtime.py',
    './_base_/shapes_demo_data.py'
]
demo_root = 'data/demo/'
lang_model_name = demo_root + 'bert'

detector = _base_.model
detector.backbone.update(
    embed_dims=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
    drop_path_rate=0.0)
detector.neck.in_channels = [64, 128, 256]
# VLFuse fixes the visual width to 256 and the text width to 768.
detector.bbox_head.update(
    lang_model_name=lang_model_name, num_classes=3, num_dyhead_blocks=1)
detector.language_model.name = lang_model_name
# The base is random: keep every box so the evaluation has something to score.
detector.test_cfg.score_thr = 0.0

model = dict(
    _delete_=True,
    type='PromptTunedDetector',
    detector=detector,
    # read by mmdet's init_detector (options merged into detector.backbone)
    backbone=dict(),
    prompt=dict(type='SDPTPrompt', num_tokens=16, layers='all',
                mode='synchronous'))
# How tools/compare.py labels this run.
experiment = dict(method='SDPT', detector='GLIP (tiny)', task='shapes (demo)')

base_weights = demo_root + 'glip_tiny_base.pth'
load_from = base_weights

# ---- data and schedule: the synthetic shapes set (tools/make_demo_assets.py),
# 128x128, and a short CPU schedule, shared with sdpt_gdino_tiny_demo.py
# (_base_/shapes_demo_data.py).
data_root = _base_.shapes_data_root
metainfo = _base_.shapes_metainfo
img_scale = _base_.shapes_img_scale
train_pipeline = _base_.shapes_train_pipeline
test_pipeline = _base_.shapes_test_pipeline
train_dataloader = _base_.shapes_train_dataloader
val_dataloader = _base_.shapes_val_dataloader
test_dataloader = val_dataloader
val_evaluator = _base_.shapes_val_evaluator
test_evaluator = val_evaluator

max_iters = _base_.shapes_max_iters
train_cfg = _base_.shapes_train_cfg
param_scheduler = _base_.shapes_param_scheduler
optim_wrapper = _base_.shapes_optim_wrapper
default_hooks = _base_.shapes_default_hooks
log_processor = _base_.shapes_log_processor
auto_scale_lr = _base_.shapes_auto_scale_lr
