"""Parameter-efficient prompt tuning for mmdet's GLIP and Grounding DINO.

``custom_imports = dict(imports=['projects.sdpt'])`` registers everything:

- ``models/``: ``PromptTunedDetector`` (mmdet MODELS), the shared wrapper
  that builds mmdet's detector, attaches a method and freezes the rest, and
  the per-detector fusion adapters;
- ``methods/``: the prompt methods (mmdet MODELS), one module each;
- ``engine/``: runner hooks (mmdet HOOKS, one per file in ``hooks/``) and the
  safe loaders of mmengine checkpoints under torch >= 2.6;
- ``datasets/``: ``ClassSubsetPrompt`` (mmdet TRANSFORMS), the annotation
  checker, few-shot splits, the benchmarks' dataset settings, synthetic data;
- ``evaluation/``: evaluation reports and experiment statistics;
- ``experiments/``: grids of runs, comparison and transfer tables, speed;
- ``inference/``: detection on image files (``tools/infer.py``).
"""
from .version import __version__  # noqa: F401
from .datasets import *  # noqa: F401, F403
from .engine import *  # noqa: F401, F403
from .methods import *  # noqa: F401, F403
from .models import *  # noqa: F401, F403
from .datasets import __all__ as _datasets
from .engine.hooks import __all__ as _hooks
from .methods import __all__ as _methods
from .models import __all__ as _models

__all__ = _models + _methods + _hooks + _datasets
