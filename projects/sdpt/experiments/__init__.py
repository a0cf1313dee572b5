"""Experiments over many runs: the grid runner, the method comparison, the
few-shot transfer benchmark and the speed benchmark."""
