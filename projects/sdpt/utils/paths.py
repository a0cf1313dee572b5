"""Where the repository is: configs, shipped checkpoints and tools are found
relative to it, whatever the working directory."""
import os.path as osp

#: The repository root (the folder holding ``projects/``, ``configs/``,
#: ``tools/`` and ``checkpoints/``).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
