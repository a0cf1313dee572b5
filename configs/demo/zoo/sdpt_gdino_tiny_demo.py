# SDPT itself, so that every method of the zoo has a file here: exactly
# ../sdpt_gdino_tiny_demo.py (K=16 unified prototype tokens on every fusion
# layer, synchronous mode).
_base_ = '../sdpt_gdino_tiny_demo.py'
