# Few-shot transfer on the synthetic corpus (projects/sdpt/datasets/synthetic/corpus.py):
# SDPT on the tiny GLIP pretrained on the source domain, tuned on k shots
# of one of the corpus's target shifts (here: composition, the held-out
# colour-shape phrases) and evaluated on that shift's dev (val) and test
# splits. `python tools/transfer_benchmark.py` prepares the corpus and the
# base and runs every shift, method, learning rate and seed; it sets the
# shift's classes and paths the same way as below.
_base_ = '../demo/sdpt_glip_tiny_demo.py'

corpus_root = 'data/synthetic/'
# Sized for a base trained from scratch and shipped in the repository (fp16
# under 30 MB, 9 M parameters): the corpus's 256-wide text encoder (GLIP's
# VLFuse, the head's Bert layer and the alignment scores all work at the text
# width) and a fusion attention 1024 wide, wider than either modality as
# GLIP-T's 2048 is (SizedATSSVLFusionHead; mmdet builds VLFuse at 256 / 768 /
# 2048 whatever the text encoder).
lang_model_name = corpus_root + 'bert_h256'
model = dict(
    detector=dict(
        language_model=dict(name=lang_model_name),
        bbox_head=dict(
            type='SizedATSSVLFusionHead',
            fusion_embed_dim=1024,
            fusion_num_heads=8,
            lang_model_name=lang_model_name,
            num_classes=16,
            # GLIP's anchors (8 x stride: 64 px at stride 8) are larger than
            # any object of a 64x64 image (10-32 px): 2 x stride instead.
            anchor_generator=dict(octave_base_scale=2)),
        test_cfg=dict(score_thr=0.0)))
experiment = dict(task='synthetic transfer')

# The pretrained tiny base shipped with the project (experiments/bases.py;
# `tools/transfer_benchmark.py --pretrain` trains it again).
base_weights = 'checkpoints/synthetic/glip_tiny_synthetic_base.pth'
load_from = base_weights

data_root = corpus_root + 'shifts/composition/'
metainfo = dict(
    classes=('red triangle', 'green cross', 'blue circle', 'yellow square'))
img_scale = (64, 64)
shots, seed = 1, 3
# The demo's pipelines at this corpus's image size.
train_pipeline = [
    dict(t, scale=img_scale) if t['type'] == 'Resize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=img_scale) if t['type'] == 'Resize' else t
    for t in _base_.test_pipeline
]
# Otherwise the demo's data (file layout, samplers) and schedule (40
# iterations, validation at the end).
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        # tools/make_few_shot.py's protocol names
        ann_file=f'annotations/instances_train_{shots}shot_seed{seed}.json',
        pipeline=train_pipeline))
# val: the dev split (choosing learning rates); test: the test split.
val_dataloader = dict(
    batch_size=8,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_dev.json',
        data_prefix=dict(img='dev/'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=8,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_test.json',
        data_prefix=dict(img='test/'),
        pipeline=test_pipeline))
val_evaluator = dict(ann_file=data_root + 'annotations/instances_dev.json')
test_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=_base_.max_iters, max_keep_ckpts=1))
