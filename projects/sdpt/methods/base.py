"""What every prompt-tuning method shares (the peft ``BaseTuner`` role).

A method is an ``nn.Module`` holding only its own parameters. ``attach``
hooks it into an mmdet detector instance (forward hooks, or a replaced
``forward`` of single module instances; mmdet classes are never patched), and
``enabled = False`` turns every hook into a no-op, so the detector computes
exactly what the base model computes. ``signature()`` is what a checkpoint of
the method records and must match to load.

Some baselines train a subset of the detector's *own* parameters instead of
adding any (linear probing, BitFit): they derive from
:class:`DetectorSubsetMethod` and name those parameters with
:meth:`PromptMethod.trainable_patterns`, which ``PromptTunedDetector`` (and
the checkpoint hook, through ``allowed_trainable_names``) consults.
"""
import contextlib
from typing import Dict, List, Optional

import torch.nn as nn


class PromptMethod(nn.Module):
    """Base of the prompt methods.

    Subclasses implement :meth:`attach` and extend :meth:`signature`; they
    register hook handles with :meth:`_keep` so :meth:`detach` removes them.
    """

    #: signature fields that may differ between a checkpoint and the config
    #: (they change how the parameters are used, not which exist)
    LOOSE_SIGNATURE_FIELDS = ('mode', )

    #: why a prompt bank may not mix tasks in one forward: what the default
    #: :meth:`mixed_task_support` answers (methods that can override it)
    mixed_task_refusal = ('its parameters change the detector\'s '
                          'computation for the whole batch, not per image')

    def __init__(self):
        super().__init__()
        self._enabled = True
        self._hooks: List = []
        self.adapter = None
        # Set by a prompt bank (models/prompt_bank.py) around a forward whose
        # images belong to different tasks: a ``TaskBatch``.
        self.task_batch = None
        # Names the cache slots of the parameters in use (a bank's task).
        self._cache_scope = None

    def mixed_task_support(self) -> Optional[str]:
        """None when a prompt bank may run images of different tasks in one
        forward, each with its task's parameters (the method reads them
        from :attr:`task_batch`); else why not, for the refusal message."""
        return self.mixed_task_refusal

    @contextlib.contextmanager
    def parameters_of(self, scope, parameters: Dict):
        """Within the block, the method's parameters are the tensors
        ``parameters`` (names as in ``named_parameters()``) and caches are
        kept under ``scope``: a swap of references, nothing is copied."""
        saved, previous_scope = [], self._cache_scope
        try:
            for name, tensor in parameters.items():
                owner_name, _, leaf = name.rpartition('.')
                owner = self.get_submodule(owner_name)
                saved.append((owner, leaf, owner._parameters[leaf]))
                owner._parameters[leaf] = tensor
            self._cache_scope = scope
            yield
        finally:
            self._cache_scope = previous_scope
            for owner, leaf, tensor in reversed(saved):
                owner._parameters[leaf] = tensor

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

    def trainable_patterns(self) -> List[str]:
        """Regexes of the detector's own parameter names that train with this
        method (``re.search`` on names such as ``bbox_head.head.bias0``).

        The method's own parameters (under ``prompt_tuning.``) always train;
        this names any others. None by default; composite methods collect
        their parts'.
        """
        return [
            pattern for child in self.children()
            if isinstance(child, PromptMethod)
            for pattern in child.trainable_patterns()
        ]

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


class DetectorSubsetMethod(PromptMethod):
    """Base of methods that train a subset of the detector's own parameters
    and add nothing to its computation (linear probing, BitFit).

    Subclasses implement :meth:`select_patterns`. There is no "off" state:
    like full fine-tuning, the tuned values *are* the detector's parameters
    (with the base weights loaded the model is the base detector), so
    ``enabled = False`` is refused rather than silently ignored; evaluate the
    base weights (the zero-shot config) for the untuned detector.
    """

    def __init__(self):
        super().__init__()
        self._patterns: List[str] = []

    def select_patterns(self, detector: nn.Module, adapter) -> List[str]:
        """Regexes of the parameter names of ``detector`` that train."""
        raise NotImplementedError

    def attach(self, detector, adapter):
        self.adapter = adapter
        self._patterns = list(self.select_patterns(detector, adapter))
        return self

    def trainable_patterns(self) -> List[str]:
        return list(self._patterns)

    @property
    def enabled(self) -> bool:
        return True

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not value:
            raise RuntimeError(
                f'{type(self).__name__} trains the detector\'s own '
                f'parameters and adds no computation: there is nothing to '
                f'switch off. Evaluate the base weights (the zero-shot '
                f'config) for the untuned detector.')

    def signature(self) -> Dict:
        return dict(super().signature(), patterns=self.trainable_patterns())


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
