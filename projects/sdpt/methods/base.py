"""What every prompt-tuning method shares (the peft ``BaseTuner`` role).

A method is an ``nn.Module`` holding only its own parameters. ``attach``
hooks it into an mmdet detector instance (forward hooks, or a replaced
``forward`` of single module instances; mmdet classes are never patched), and
``enabled = False`` turns every hook into a no-op, so the detector computes
exactly what the base model computes. ``signature()`` is what a checkpoint of
the method records and must match to load.
"""
from typing import Dict, List

import torch.nn as nn


class PromptMethod(nn.Module):
    """Base of the prompt methods.

    Subclasses implement :meth:`attach` and extend :meth:`signature`; they
    register hook handles with :meth:`_keep` so :meth:`detach` removes them.
    """

    #: signature fields that may differ between a checkpoint and the config
    #: (they change how the parameters are used, not which exist)
    LOOSE_SIGNATURE_FIELDS = ('mode', )

    def __init__(self):
        super().__init__()
        self._enabled = True
        self._hooks: List = []
        self.adapter = None

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        # Composite methods (DPT) switch their parts with them.
        self._enabled = bool(value)
        for child in self.children():
            if isinstance(child, PromptMethod):
                child.enabled = value

    def attach(self, detector: nn.Module, adapter) -> 'PromptMethod':
        raise NotImplementedError

    def _keep(self, handle) -> None:
        self._hooks.append(handle)

    def detach(self) -> None:
        """Remove the hooks (the detector is the base model again)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        for child in self.children():
            if isinstance(child, PromptMethod):
                child.detach()

    def signature(self) -> Dict:
        return dict(
            method=type(self).__name__,
            detector=self.adapter.detector_name if self.adapter else None)


class ReplacedMethod:
    """Replace one method of one instance (never the class); ``remove()``
    restores what the instance had before. Returned like a hook handle."""

    def __init__(self, obj, name: str, function):
        self.obj = obj
        self.name = name
        self.previous = vars(obj).get(name)
        setattr(obj, name, function)

    def remove(self) -> None:
        if self.previous is None:
            vars(self.obj).pop(self.name, None)
        else:
            setattr(self.obj, self.name, self.previous)
