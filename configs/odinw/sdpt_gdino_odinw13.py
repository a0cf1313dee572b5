# SDPT on Grounding DINO Swin-T, few-shot ODinW13: one config for the 13
# datasets x k in {1, 3, 5, 10} x seeds {3, 30, 300}. Pick the setting on
# the command line; projects/sdpt/datasets/benchmark_settings.py (ODINW13)
# fills in the dataset's files, class names and prompt overrides as mmdet's
# odinw13 configs define them:
#
#   python tools/train.py configs/odinw/sdpt_gdino_odinw13.py \
#       --cfg-options dataset=Aquarium shots=3 seed=30
#   -> work_dirs/sdpt_gdino_odinw13/Aquarium/3shot_seed30/
#
# (tools/make_config.py writes the resolved config to a file.) The splits
# come from tools/make_few_shot.py --protocol (see README, "Datasets and
# few-shot protocols"). Recipe, prompt size and weights: as
# ../sdpt_gdino_coco_1shot.py (the paper's recipe).
_base_ = '../sdpt_gdino_coco_1shot.py'

benchmark = 'odinw13'
dataset = 'AerialMaritimeDrone'  # one of the 13 names in ODINW13
shots, seed = 1, 3               # shots=None: the full training set
data_root = 'data/odinw/'
# True: the caption prompt overrides written (commented out) in mmdet's
# odinw13 configs, at test time (mmdet's Grounding DINO loss does not read
# them).
caption_prompts = False

test_pipeline = _base_.test_pipeline
test_pipeline[-1]['meta_keys'] = ('img_id', 'img_path', 'ori_shape',
                                  'img_shape', 'scale_factor', 'text',
                                  'custom_entities', 'caption_prompt')
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(classwise=True)
test_evaluator = val_evaluator

# The runtime's hooks, plus EvalReportHook (projects/sdpt/engine/hooks/):
# per-class AP table and bar chart, results JSON and drawn detections under
# <work_dir>/report/ (written by projects/sdpt/evaluation/reports.py).
custom_hooks = _base_.custom_hooks + [dict(type='EvalReportHook')]
