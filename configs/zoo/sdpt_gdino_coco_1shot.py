# SDPT itself, so that every method of the zoo has a file here: exactly
# ../sdpt_gdino_coco_1shot.py (the paper's setting).
_base_ = '../sdpt_gdino_coco_1shot.py'
