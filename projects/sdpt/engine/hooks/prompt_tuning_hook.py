"""Runner hook shared by every prompt-tuning config.

* ``before_train``: checks that exactly the allowed parameters train (the
  method's, plus ``extra_trainable``), logs the trainable count and % of the
  whole model, and stops the run otherwise.
  It also hashes the frozen base weights once (the card's fingerprint).
* ``after_val_epoch``: remembers the last validation metrics for the card.
  mmengine saves a checkpoint before the validation of the same iteration;
  when the run validated the weights it just saved, their card gets those
  metrics (the file is rewritten, atomically).
* ``before_save_checkpoint``: keeps only the trainable parameters (a prompt
  checkpoint), records what they belong to in ``meta['prompt_tuning']`` and
  writes the prompt card in ``meta['prompt_card']``
  (``checkpoint/prompt_checkpoint.py``).
* ``after_load_checkpoint``: refuses a prompt checkpoint made for another
  model (detector, method, K, layers) or other base weights (the card's
  fingerprint; ``allow_base_mismatch=True`` loads it anyway), and a detector
  checkpoint anywhere but as the base weights of a new run; completes a
  prompt checkpoint with the base detector's weights, so ``--resume`` and
  ``tools/test.py`` load a whole model.
"""
import os.path as osp
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import _load_checkpoint

from ...checkpoint.load_completion import mark_prompt_state
from ...checkpoint.prompt_checkpoint import (
    CARD_KEY,
    META_KEY,
    OVERRIDE,
    PromptCheckpointMismatch,
    base_fingerprint,
    build_card,
    check_prompt_checkpoint,
    complete_prompt_checkpoint,
    set_card_metrics,
)
from ...checkpoint.prompt_checkpoint import state_dict_of as _state_dict_of
from ...methods.trainable import (
    METHOD_ATTR,
    allowed_trainable_names,
    format_report,
    trainable_parameter_report,
)
from ...utils.io import atomic_torch_save


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class PromptTuningHook(Hook):
    """See the module docstring.

    Args:
        save_full_model (bool): save every parameter instead of only the
            trainable ones. Defaults to False.
        base_weights (str, optional): detector weights that complete a prompt
            checkpoint on load. Defaults to the config's ``base_weights``,
            else the one recorded in the checkpoint.
        allow_base_mismatch (bool, optional): load a prompt checkpoint onto
            base weights whose fingerprint differs from its card's (with a
            warning). Defaults to the config's ``allow_base_mismatch``
            (False).
    """
    priority = 'VERY_HIGH'

    def __init__(self,
                 save_full_model: bool = False,
                 base_weights: Optional[str] = None,
                 allow_base_mismatch: Optional[bool] = None):
        self.save_full_model = save_full_model
        self.base_weights = base_weights
        self.allow_base_mismatch = allow_base_mismatch
        self._fingerprint = None  # of the frozen base, hashed once per run
        self._metrics = None  # (iteration, the last validation metrics)
        self._saved_iter = None  # the iteration of the last card written

    def _allow_base_mismatch(self, runner) -> bool:
        if self.allow_base_mismatch is not None:
            return self.allow_base_mismatch
        return bool(runner.cfg.get(OVERRIDE, False))

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
        report = format_report(trainable_parameter_report(model))
        runner.logger.info(f'Prompt tuning: {report}')
        # The base weights are loaded and nothing has trained yet: hash
        # them once for the cards of this run's checkpoints.
        self._fingerprint = base_fingerprint(model)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not metrics:
            return
        self._metrics = (runner.iter, dict(metrics))
        if self._saved_iter == runner.iter and is_main_process():
            self._record_metrics_in_last_checkpoint(runner, metrics)

    def _record_metrics_in_last_checkpoint(self, runner, metrics) -> None:
        """The card of the checkpoint saved at this iteration (before this
        validation) gets this validation's metrics."""
        path = runner.message_hub.get_info('last_ckpt')
        if not path or not osp.isfile(path):
            return  # remote storage: the card keeps the earlier metrics
        checkpoint = _load_checkpoint(path, map_location='cpu',
                                      logger='silent')
        meta = checkpoint.get('meta') or {}
        card = meta.get(CARD_KEY)
        if card is None or card.get('iter') != runner.iter:
            return
        card = set_card_metrics(checkpoint, metrics, runner.iter)
        if not meta[META_KEY].get('full_model'):
            checkpoint['state_dict'] = mark_prompt_state(
                checkpoint['state_dict'], meta[META_KEY], card)
        atomic_torch_save(checkpoint, path)
        runner.logger.info(f'The card of {path} records the validation '
                           f'metrics of its weights (iteration {runner.iter})')

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
        base_weights = self._base_weights(runner) or runner.cfg.get(
            'load_from')
        meta = checkpoint.setdefault('meta', {})
        meta[META_KEY] = dict(
            method.signature(),
            full_model=self.save_full_model,
            base_weights=base_weights)
        if self._fingerprint is None:  # saved without training (tools)
            self._fingerprint = base_fingerprint(model)
        metrics_iter, metrics = self._metrics or (None, None)
        card = meta[CARD_KEY] = build_card(
            model,
            fingerprint=self._fingerprint,
            base_weights=base_weights,
            classes=_train_classes(runner),
            task=_task(runner.cfg),
            experiment=runner.cfg.get('experiment'),
            metrics=metrics,
            metrics_iter=metrics_iter,
            # mmengine saves ``iter_{runner.iter + 1}`` before counting it
            iteration=getattr(runner, 'iter', -1) + 1)
        self._saved_iter = card['iter']
        if not self.save_full_model:
            # what a plain torch.load + load_state_dict needs to complete it
            checkpoint['state_dict'] = mark_prompt_state(
                checkpoint['state_dict'], meta[META_KEY], card)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = (checkpoint.get('meta') or {}).get(META_KEY)
        model = _unwrap(runner.model)
        source = runner.cfg.get('load_from') or 'the checkpoint'
        if meta is None:
            self._check_detector_checkpoint(runner, checkpoint, source)
            return  # the base weights: nothing to add
        if meta.get('full_model'):
            check_prompt_checkpoint(meta, model, source)
            return
        base = self._base_weights(runner, meta)
        if base is not None:
            runner.logger.info(f'Completing prompt checkpoint with base '
                               f'weights {base}')
        checkpoint['state_dict'] = complete_prompt_checkpoint(
            checkpoint, model, base, source,
            allow_base_mismatch=self._allow_base_mismatch(runner))


def _train_classes(runner):
    """Class names of the training set, in label order (None if unknown)."""
    try:
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
    except Exception:  # noqa: BLE001  (no loader: a test or a tool)
        classes = None
    if not classes:
        dataset = (runner.cfg.get('train_dataloader') or {}).get(
            'dataset') or {}
        classes = (dataset.get('metainfo') or {}).get('classes')
    return list(classes) if classes else None


def _task(cfg) -> dict:
    """The run's task: the benchmark setting (dataset, shots, seed) when the
    config has one, else the seed."""
    setting = dict(cfg.get('setting') or {})
    task = {k: setting.get(k)
            for k in ('benchmark', 'dataset', 'shots', 'seed', 'name')}
    if task.get('seed') is None:
        task['seed'] = (cfg.get('randomness') or {}).get('seed')
    for key in ('shots', 'seed'):  # top-level keys of benchmark configs
        if task.get(key) is None and cfg.get(key) is not None:
            task[key] = cfg.get(key)
    return {k: v for k, v in task.items() if v is not None}
