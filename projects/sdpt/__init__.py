"""Parameter-efficient prompt tuning for mmdet's GLIP and Grounding DINO.

``custom_imports = dict(imports=['projects.sdpt'])`` registers everything.
The subpackages are layers, bottom to top; a module imports only from its
own layer or a lower one (``tests/test_layers.py`` checks it):

1. ``utils``, then ``version``: files written whole, the repository root;
   the toolbox version (with the git commit of the checkout);
2. ``detectors``: what differs between GLIP and Grounding DINO (fusion
   layers, masks, text encoder, GLIP's sized head);
3. ``methods``: the prompt methods (mmdet ``MODELS``), one module each, the
   prompted fusion attention, and the rule of what trains;
4. ``checkpoint``: the safe checkpoint loaders, the prompt checkpoint format
   and its card;
5. ``models``: ``PromptTunedDetector``, the wrapper that builds mmdet's
   detector, attaches a method, freezes the rest, reports what trains and
   completes a prompt checkpoint with its base weights wherever it loads;
6. ``datasets``, ``evaluation``: transforms, the annotation checker,
   few-shot splits, benchmark settings, synthetic data; reports, statistics,
   diagnostics and plots;
7. ``engine``: loading a config, the runner hooks (mmdet ``HOOKS``);
8. ``inference``: detection on image files, the prompt bank;
9. ``serving``: the prompt bank behind a web page (requests batched across
   users, the Gradio page, its load test and browser driver; needs
   ``requirements-serve.txt``);
10. ``experiments``: grids of runs, the comparison, the transfer suite,
    speed;
11. ``cli``: what ``tools/`` share.
"""
from .checkpoint import *  # noqa: F401, F403
from .checkpoint import __all__ as _checkpoint
from .datasets import *  # noqa: F401, F403
from .datasets import __all__ as _datasets
from .detectors import *  # noqa: F401, F403
from .detectors import __all__ as _detectors
from .engine import *  # noqa: F401, F403
from .engine import __all__ as _engine
from .methods import *  # noqa: F401, F403
from .methods import __all__ as _methods
from .models import *  # noqa: F401, F403
from .models import __all__ as _models
from .version import __version__  # noqa: F401

__all__ = (_detectors + _methods + _models + _checkpoint + _datasets +
           _engine)
