"""Runner hook shared by every prompt-tuning config.

* ``before_train``: checks that exactly the allowed parameters train (the
  method's, plus ``extra_trainable``), logs the trainable count and % of the
  whole model, and stops the run otherwise.
* ``before_save_checkpoint``: keeps only the trainable parameters (a prompt
  checkpoint) and records what they belong to in ``meta['prompt_tuning']``.
* ``after_load_checkpoint``: refuses a prompt checkpoint made for another
  model (detector, method, K, layers), and a detector checkpoint anywhere but
  as the base weights of a new run; completes a prompt checkpoint with the
  base detector's weights, so ``--resume`` and ``tools/test.py`` load a whole
  model.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import _load_checkpoint
from mmdet.registry import HOOKS

from ...models.prompt_tuned_detector import (METHOD_ATTR, allowed_trainable_names,
                                    format_report, trainable_parameter_report)

META_KEY = 'prompt_tuning'
# Metadata next to the method's signature in a prompt checkpoint.
RECORD_ONLY = ('full_model', 'base_weights')


class PromptCheckpointMismatch(ValueError):
    pass


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _state_dict_of(checkpoint):
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and key in checkpoint:
            return checkpoint[key]
    return checkpoint


def check_prompt_checkpoint(meta: dict, model, source: str) -> None:
    """Raise :class:`PromptCheckpointMismatch` naming every difference."""
    method = getattr(model, METHOD_ATTR, None)
    if method is None:
        raise PromptCheckpointMismatch(
            f'{source} is a prompt checkpoint ({meta.get("method")}) but the '
            f'model has no prompt-tuning method: use a config with '
            f"model.type='PromptTunedDetector'.")
    ours = method.signature()
    loose = set(RECORD_ONLY) | set(method.LOOSE_SIGNATURE_FIELDS)
    # 'method' and 'detector' first: they explain every other difference.
    keys = ['method', 'detector'] + sorted((set(meta) | set(ours)) - loose -
                                           {'method', 'detector'})
    diffs = [
        f'{k}: {meta.get(k)!r} in the checkpoint vs {ours.get(k)!r} in the '
        f'config' for k in keys if meta.get(k) != ours.get(k)
    ]
    if diffs:
        raise PromptCheckpointMismatch(
            f'Prompt checkpoint {source} does not match this model: ' +
            '; '.join(diffs) + '. Use the config it was trained with.')


@HOOKS.register_module()
class PromptTuningHook(Hook):
    """See the module docstring.

    Args:
        save_full_model (bool): save every parameter instead of only the
            trainable ones. Defaults to False.
        base_weights (str, optional): detector weights that complete a prompt
            checkpoint on load. Defaults to the config's ``base_weights``,
            else the one recorded in the checkpoint.
    """
    priority = 'VERY_HIGH'

    def __init__(self,
                 save_full_model: bool = False,
                 base_weights: Optional[str] = None):
        self.save_full_model = save_full_model
        self.base_weights = base_weights

    def _base_weights(self, runner, meta=None) -> Optional[str]:
        return (self.base_weights or runner.cfg.get('base_weights')
                or (meta or {}).get('base_weights'))

    def _check_detector_checkpoint(self, runner, checkpoint, source):
        """A checkpoint without prompt meta is fine only as base weights,
        unless the model has no prompt method (zero-shot, full fine-tuning):
        then every checkpoint is a detector checkpoint."""
        if getattr(_unwrap(runner.model), METHOD_ATTR, None) is None:
            return
        state = _state_dict_of(checkpoint)
        if any(k.startswith(METHOD_ATTR + '.') for k in state):
            return  # prompts saved with the model, without meta
        training = isinstance(getattr(runner, '_train_loop', None), BaseLoop)
        resuming = getattr(runner, '_resume', False)
        if training and not resuming and \
                source == self._base_weights(runner):
            return
        what = 'resume from' if resuming else (
            'continue training from' if training else 'evaluate')
        raise PromptCheckpointMismatch(
            f'{source} holds no prompt parameters (a detector checkpoint?), '
            f'but a prompt checkpoint is needed to {what}. Pass a checkpoint '
            f'saved by prompt tuning (work_dirs/<config>/iter_*.pth); the '
            f'detector weights belong in base_weights (and load_from to '
            f'start training). To evaluate the detector without prompts use '
            f'its plain mmdet config.')

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        allowed = set(allowed_trainable_names(model))
        training = {
            n for n, p in model.named_parameters() if p.requires_grad
        }
        unexpected = sorted(training - allowed)
        if unexpected:
            raise RuntimeError(
                f'{len(unexpected)} parameter(s) train that the prompt-tuning '
                f'config does not allow, e.g. {unexpected[:5]}. Something '
                f're-enabled requires_grad after the model was built; list '
                f'them in model.extra_trainable if that is intended.')
        if not training:
            raise RuntimeError(
                'No parameter trains: the config has no prompt method '
                '(a zero-shot config: evaluate it with tools/test.py) or its '
                'method has no tokens (num_tokens=0), and '
                'model.extra_trainable is empty.')
        runner.logger.info(
            f'Prompt tuning: {format_report(trainable_parameter_report(model))}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        model = _unwrap(runner.model)
        method = getattr(model, METHOD_ATTR, None)
        if method is None:
            return
        if not self.save_full_model:
            trainable = set(allowed_trainable_names(model))
            checkpoint['state_dict'] = {
                k: v
                for k, v in checkpoint['state_dict'].items() if k in trainable
            }
        checkpoint.setdefault('meta', {})[META_KEY] = dict(
            method.signature(),
            full_model=self.save_full_model,
            base_weights=self._base_weights(runner) or runner.cfg.get(
                'load_from'))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = (checkpoint.get('meta') or {}).get(META_KEY)
        model = _unwrap(runner.model)
        source = runner.cfg.get('load_from') or 'the checkpoint'
        if meta is None:
            self._check_detector_checkpoint(runner, checkpoint, source)
            return  # the base weights: nothing to add
        check_prompt_checkpoint(meta, model, source)
        if meta.get('full_model'):
            return
        base = self._base_weights(runner, meta)
        if base is None:
            raise FileNotFoundError(
                f'{source} holds only prompt parameters; the base detector '
                f"weights are unknown. Set base_weights='<detector .pth>' in "
                f'the config (or --cfg-options base_weights=...).')
        runner.logger.info(f'Completing prompt checkpoint with base '
                           f'weights {base}')
        base_checkpoint = _load_checkpoint(base, map_location='cpu')
        if (base_checkpoint.get('meta') or {}).get(META_KEY):
            raise PromptCheckpointMismatch(
                f'base_weights {base} is itself a prompt checkpoint; point '
                f'base_weights at the detector weights.')
        base_state = _state_dict_of(base_checkpoint)
        merged = {
            k: v
            for k, v in base_state.items()
            if not k.startswith(METHOD_ATTR + '.')
        }
        merged.update(checkpoint['state_dict'])
        checkpoint['state_dict'] = merged
