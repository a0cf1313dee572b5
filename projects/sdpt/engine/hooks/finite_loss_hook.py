"""``FiniteLossHook``: stop at the first non-finite loss, before saving it."""
import math

import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


class NonFiniteLossError(FloatingPointError):
    pass


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop at the first iteration whose loss (or a trainable parameter) is
    NaN or infinite, before that iteration's checkpoint is written.

    mmengine's ``CheckInvalidLossHook`` looks only every ``interval``
    iterations and lets the checkpoint hook save the broken state first; this
    hook runs every iteration with a higher priority than the checkpoint
    hook. All ranks agree on the verdict, so a distributed run stops on every
    rank at once.
    """
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        bad = {}
        for name, value in (outputs or {}).items():
            if 'loss' not in name:
                continue
            value = float(value.detach().float().mean()) if isinstance(
                value, torch.Tensor) else value
            if isinstance(value, (int, float)) and not math.isfinite(value):
                bad[name] = value
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        params = [n for n, p in model.named_parameters()
                  if p.requires_grad and not torch.isfinite(p).all()]
        flag = torch.tensor(float(bool(bad or params)))
        all_reduce(flag, op='max')
        if not flag.item():
            return
        iteration = runner.iter + 1
        last = runner.message_hub.get_info('last_ckpt')
        found = ', '.join(f'{k}={v}' for k, v in bad.items()) or (
            'a finite loss on this rank, but another rank\'s was not'
            if not params else 'the loss was finite')
        if params:
            found += f'; non-finite trainable parameters: {params[:5]}'
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {iteration} ({found}). Training '
            f'stopped before saving this iteration; the last good checkpoint '
            f'is {last or "none (no checkpoint was saved yet)"}'
            + (f' (continue with --resume {last})' if last else '') +
            '. Usual causes: a learning rate too high, fp16 overflow '
            '(use --amp for dynamic loss scaling), broken boxes (run '
            'tools/check_annotations.py).')
