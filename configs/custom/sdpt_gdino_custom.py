# SDPT on Grounding DINO Swin-T for your own COCO-format data: as
# sdpt_glip_custom.py (the same fields), with the recipe of
# ../sdpt_gdino_coco_1shot.py.
#
#   # 1. validate the annotation files before training with the data
#   #    checker (tools/check_annotations.py): missing images, boxes outside
#   #    images, unknown category ids, empty categories, duplicate ids
#   python tools/check_annotations.py data/mydata/annotations/train.json \
#       --img-dir data/mydata/images/ --classes class_a class_b
#   # 2. optional k-shot splits (k in {1,3,5,10} x seeds {3,30,300})
#   python tools/make_few_shot.py data/mydata/annotations/train.json --protocol
#   # 3. train (shots=None: the whole training file) and evaluate
#   python tools/train.py configs/custom/sdpt_gdino_custom.py \
#       --cfg-options shots=5 seed=30
#   python tools/test.py configs/custom/sdpt_gdino_custom.py \
#       work_dirs/sdpt_gdino_custom/5shot_seed30/iter_2000.pth \
#       --cfg-options shots=5 seed=30
_base_ = '../sdpt_gdino_coco_1shot.py'

benchmark = 'custom'
data_root = 'data/mydata/'
train_ann = 'annotations/train.json'   # relative to data_root
train_img = 'images/'                  # image dir, relative to data_root
val_ann = 'annotations/val.json'
val_img = 'images/'
# class names in the order of the annotation file's category ids
classes = ('class_a', 'class_b')
shots, seed = None, 3                  # shots=k: the k-shot split

val_evaluator = dict(classwise=True)
test_evaluator = val_evaluator
# The runtime's hooks, plus the per-class AP report under <work_dir>/report/.
custom_hooks = _base_.custom_hooks + [dict(type='EvalReportHook')]
