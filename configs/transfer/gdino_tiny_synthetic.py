# Few-shot transfer on the synthetic corpus (projects/sdpt/datasets/synthetic/corpus.py):
# SDPT on the tiny Grounding DINO pretrained on the source domain, tuned on k shots
# of one of the corpus's target shifts (here: composition, the held-out
# colour-shape phrases) and evaluated on that shift's dev (val) and test
# splits. `python tools/transfer_benchmark.py` prepares the corpus and the
# base and runs every shift, method, learning rate and seed; it sets the
# shift's classes and paths the same way as below.
_base_ = '../demo/sdpt_gdino_tiny_demo.py'

corpus_root = 'data/synthetic/'
lang_model_name = corpus_root + 'bert'
model = dict(
    detector=dict(
        # at most 3 objects per 64x64 image
        num_queries=30,
        dn_cfg=dict(group_cfg=dict(num_dn_queries=10)),
        # top-k over queries x classes: at most 30 x 4 on the target domain
        test_cfg=dict(max_per_img=100),
        language_model=dict(name=lang_model_name),
        # every phrase of the corpus: the label embedding of the denoising
        # queries is shared by pretraining (12 phrases) and transfer (4)
        bbox_head=dict(num_classes=16)))
experiment = dict(task='synthetic transfer')

# The pretrained tiny base shipped with the project (experiments/bases.py;
# `tools/transfer_benchmark.py --pretrain` trains it again).
base_weights = 'checkpoints/synthetic/gdino_tiny_synthetic_base.pth'
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
