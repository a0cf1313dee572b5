"""Many tasks on one frozen base: a bank of prompt checkpoints.

A prompt checkpoint is a few hundred KB against the detector's hundreds of
MB, so one detector instance can serve many downstream tasks. A
:class:`PromptBank` holds the parameters of N prompt checkpoints (each with
its own class names) next to one prompt-tuned detector; a batch may mix
images of different tasks, and each image is detected with its task's prompts
and its task's class names in one forward::

    bank = PromptBank(model)                    # base weights loaded
    bank.add('pets', 'work_dirs/pets/iter_2000.pth')
    bank.add('tools', 'work_dirs/tools/iter_2000.pth')
    with bank.selecting(['pets', 'tools', 'pets']):
        results = model.test_step(batch)        # texts: each image's classes

Switching tasks loads nothing: the tasks' tensors stay on the device, and
the method reads, per image, those of its task (:class:`TaskBatch`). SDPT and
independent dual prompts compute each task's prompt projections once and
keep them (the prompted-key cache); a forward only gathers them per image.

Methods that support mixed-task batches: those whose
``PromptMethod.mixed_task_support()`` returns None: ``SDPTPrompt``,
``IndependentDualPrompt`` (fusion prompts, per image keys / values) and
``TextContextPrompt`` with shared context (per caption context vectors).
The others change the detector's computation for the whole batch (LoRA,
adapters, BitFit, linear probing, visual prompts in the backbone, DPT,
MaPLe, the language prompt offset) or tie their vectors to one class list
(learned class features) and are refused with the reason.

mmdet's Grounding DINO lets the captions of a batch change each other's
results: image queries attend to text padding, and the encoder's text layers
give some heads of an image another image's attention mask. Neither matters
when every image has the same caption; for mixed tasks the bank corrects
both (``DetectorAdapter.separate_captions``), so each image's result is its
result alone.
"""
import contextlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from ..checkpoint.prompt_checkpoint import (
    base_fingerprint,
    card_of,
    check_base_fingerprint,
    check_prompt_checkpoint,
    load_prompt_checkpoint,
    state_dict_of,
)
from ..methods import registered_methods
from ..methods.base import PromptMethod
from ..methods.trainable import METHOD_ATTR


class PromptBankError(ValueError):
    """A task or a method the bank cannot serve (the message says why)."""


@dataclass
class TaskBatch:
    """The tasks of the images of one forward.

    ``order``: the distinct tasks, in order of first appearance;
    ``index``: (B,) long tensor, each image's position in ``order``;
    ``parameters``: ``{task: {parameter name: tensor}}`` (names as in the
    method's ``named_parameters()``).
    """
    names: List[str]
    order: List[str]
    index: torch.Tensor
    parameters: Dict[str, Dict[str, torch.Tensor]]

    def check_batch_size(self, batch: int) -> None:
        if batch != len(self.names):
            raise PromptBankError(
                f'A forward of {batch} images (or captions) under a prompt '
                f'bank selection of {len(self.names)} tasks: select one task '
                f'per image of the batch.')


@dataclass
class BankTask:
    name: str
    classes: List[str]
    parameters: Dict[str, torch.Tensor]
    source: str
    card: Optional[dict]


class PromptBank:
    """N prompt checkpoints on one prompt-tuned detector (module docstring).

    Args:
        model: a detector built by ``PromptTunedDetector`` with the method
            the checkpoints were tuned with (same signature), its base
            weights loaded.
        fingerprint (str, optional): the base weights' fingerprint
            (``engine.prompt_card.base_fingerprint``), when already known.
    """

    def __init__(self, model: nn.Module, fingerprint: Optional[str] = None):
        method = getattr(model, METHOD_ATTR, None)
        if not isinstance(method, PromptMethod):
            raise PromptBankError(
                'A prompt bank needs a detector with a prompt method '
                "(model.type='PromptTunedDetector' and model.prompt set).")
        reason = method.mixed_task_support()
        if reason is not None:
            raise PromptBankError(
                f'{type(method).__name__} cannot serve images of different '
                f'tasks in one forward: {reason}. Methods that can: '
                f'{", ".join(mixed_task_methods())}. Run its tasks one '
                f'after the other instead (one checkpoint at a time).')
        if not method.enabled:
            raise PromptBankError('The prompt method is switched off '
                                  '(enabled = False).')
        self.model = model
        self.method = method
        if fingerprint is None:
            fingerprint = base_fingerprint(model)
        self.fingerprint = fingerprint
        self.tasks: Dict[str, BankTask] = {}
        self._caption_hooks = method.adapter.separate_captions(model)

    # ---- tasks -----------------------------------------------------------
    def add(self, name: str, checkpoint: Union[str, dict],
            classes: Optional[Sequence[str]] = None,
            allow_base_mismatch: bool = False) -> BankTask:
        """Add the prompt checkpoint ``checkpoint`` (a path, or a loaded
        checkpoint dict) as task ``name``. ``classes`` default to its card's.
        Refused: another method signature, another base fingerprint
        (unless ``allow_base_mismatch``), no class names."""
        if name in self.tasks:
            raise PromptBankError(f'The bank already has a task {name!r}.')
        source = checkpoint if isinstance(checkpoint, str) else \
            f'the checkpoint of task {name!r}'
        checkpoint, meta = load_prompt_checkpoint(checkpoint, source)
        check_prompt_checkpoint(meta, self.model, source)
        card = card_of(checkpoint)
        check_base_fingerprint(card, self.fingerprint, source,
                               'the bank\'s base weights',
                               allow_base_mismatch)
        prefix = METHOD_ATTR + '.'
        state = state_dict_of(checkpoint)
        own = dict(self.method.named_parameters())
        parameters = {}
        for key, shape in ((k, p.shape) for k, p in own.items()):
            value = state.get(prefix + key)
            if value is None or value.shape != shape:
                raise PromptBankError(
                    f'{source} has no parameter {prefix + key} of shape '
                    f'{tuple(shape)} (found '
                    f'{None if value is None else tuple(value.shape)}).')
            parameters[key] = nn.Parameter(
                value.to(own[key].device, own[key].dtype),
                requires_grad=False)
        extra = sorted(k for k in state if not k.startswith(prefix))
        if extra:
            raise PromptBankError(
                f'{source} also holds detector parameters ({extra[:3]}...): '
                f'its method changes the detector itself and cannot share '
                f'it with other tasks.')
        classes = list(classes) if classes is not None else list(
            (card or {}).get('classes') or [])
        classes = [c for c in (str(c).strip() for c in classes) if c]
        if not classes:
            raise PromptBankError(
                f'Task {name!r}: no class names ({source} carries none on '
                f'its card): pass classes=[...] (--texts).')
        task = BankTask(name, classes, parameters, source, card)
        self.tasks[name] = task
        return task

    def remove(self, name: str) -> None:
        self.tasks.pop(self._task(name).name)
        forget = getattr(self.method, 'forget_cache', None)
        if forget is not None:
            forget(name)

    def classes(self, name: str) -> List[str]:
        return list(self._task(name).classes)

    def _task(self, name: str) -> BankTask:
        try:
            return self.tasks[name]
        except KeyError:
            raise PromptBankError(
                f'No task {name!r} in the bank (tasks: '
                f'{", ".join(self.tasks) or "none"}).') from None

    # ---- forwards ----------------------------------------------------------
    @contextlib.contextmanager
    def selecting(self, names: Sequence[str]):
        """Forwards within the block run image ``i`` with task
        ``names[i]``'s prompts (the data samples' texts must be those
        tasks' class names: :meth:`classes`)."""
        names = list(names)
        order = list(dict.fromkeys(names))
        for name in order:
            self._task(name)
        device = next(iter(self.tasks[order[0]].parameters.values())).device \
            if self.tasks[order[0]].parameters else torch.device('cpu')
        batch = TaskBatch(
            names=names,
            order=order,
            index=torch.tensor([order.index(n) for n in names],
                               dtype=torch.long, device=device),
            parameters={n: self.tasks[n].parameters for n in order})
        previous, self.method.task_batch = self.method.task_batch, batch
        try:
            yield batch
        finally:
            self.method.task_batch = previous

    def close(self) -> None:
        """Remove the bank's hooks from the detector."""
        for handle in self._caption_hooks:
            handle.remove()
        self._caption_hooks = []


def mixed_task_methods() -> List[str]:
    """Registered methods that can serve mixed-task batches (some only in
    some settings: :meth:`PromptMethod.mixed_task_support` of the instance
    decides)."""
    return [
        name for name, cls in registered_methods().items()
        if cls.mixed_task_support is not PromptMethod.mixed_task_support
    ]
