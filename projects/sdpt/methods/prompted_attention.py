"""The prompted fusion attention, as pure functions of mmdet's
``BiMultiHeadAttention`` weights and the prompt tokens.

A fusion-prompt method appends ``K`` tokens to each side of the attention's
inputs, ``V' = [V; Pv]`` and ``L' = [L; Pl]``, and drops the prompt rows of
both outputs. Two paths compute it, with the same numbers:

* the straightforward one (the numerical reference): extend the inputs and
  masks (:func:`extend_attention_inputs`), run mmdet's attention, drop the
  prompt rows (:func:`drop_prompt_rows`);
* :func:`prompted_bi_attention`: only the original tokens' rows, the prompts
  entering as keys and values through their projections
  (:func:`prompt_projections`, cacheable while no gradient is recorded).

``methods/fusion_prompt.py`` wires them into a detector's fusion layers.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.utils.vlfuse_helper import MAX_CLAMP_VALUE
from torch import Tensor


def split_attention_call(args, kwargs):
    """(vision, lang, mask_v, mask_l) of a BiMultiHeadAttention call."""
    names = ('vision', 'lang', 'attention_mask_v', 'attention_mask_l')
    values = dict(zip(names, args))
    values.update(kwargs)
    return [values.get(n) for n in names]


def split_heads(tensor: Tensor, num_heads: int) -> Tensor:
    """(..., N, E) -> (..., heads, N, E / heads)."""
    *lead, n, e = tensor.shape
    return tensor.view(*lead, n, num_heads, e // num_heads).transpose(-3, -2)


def merge_heads(tensor: Tensor) -> Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    b, h, n, d = tensor.shape
    return tensor.transpose(1, 2).reshape(b, n, h * d)


def clamp_logits(logits: Tensor, attn) -> Tensor:
    """mmdet's clamps of attention logits, as ``attn`` is configured."""
    if attn.clamp_min_for_underflow:
        logits = torch.clamp(logits, min=-MAX_CLAMP_VALUE)
    if attn.clamp_max_for_overflow:
        logits = torch.clamp(logits, max=MAX_CLAMP_VALUE)
    return logits


def prompted_bi_attention(attn, vision: Tensor, lang: Tensor,
                          mask_v: Optional[Tensor],
                          image_query_text_mask: Optional[Tensor],
                          prompts: Tuple[Tensor, Tensor, Optional[Tensor],
                                         Optional[Tensor]],
                          prompts_visible_to_image: bool):
    """mmdet ``BiMultiHeadAttention.forward`` on ``[V; Pv]`` and ``[L; Pl]``,
    computing only the rows of the original tokens.

    The straightforward path appends the prompt copies to the inputs and drops
    the prompt rows of both outputs. Here the prompts enter only as keys and
    values, through their projections (``prompts``: ``v_proj(Pv) * scale``,
    ``values_v_proj(Pv)``, ``l_proj(Pl)``, ``values_l_proj(Pl)``, each
    (heads, K, head_dim) in the inputs' dtype, cacheable at inference; the
    last two None in reference mode): image queries attend to
    ``[L; Pl]`` (or to ``L`` alone when ``prompts_visible_to_image`` is False,
    reference mode, where the masked prompt keys are never computed) and text
    queries to ``[V; Pv]``. The operations on every kept entry are mmdet's
    (clamps, max shift over all keys, masks, softmax, dropout), so the result
    equals the straightforward path up to floating-point summation order.

    Args:
        attn: the ``BiMultiHeadAttention`` instance (its weights are used).
        mask_v: the visual padding mask (B, Nv), bool, or None.
        image_query_text_mask: the text mask the image queries see on the
            original text entries, in mmdet's additive convention, or None.
    """
    bsz, num_v, _ = vision.shape
    heads = attn.num_heads
    q_p, vv_p, k_p, vl_p = prompts
    query = split_heads(attn.v_proj(vision) * attn.scale, heads)  # B,H,Nv,d
    key = split_heads(attn.l_proj(lang), heads)  # B,H,Nl,d
    value_v = split_heads(attn.values_v_proj(vision), heads)
    value_l = split_heads(attn.values_l_proj(lang), heads)

    logits = clamp_logits(query @ key.transpose(-1, -2), attn)  # B,H,Nv,Nl
    # text queries: logits over [V; Pv]; Pv's are q_p . key
    logits_pl = clamp_logits(torch.matmul(q_p, key.transpose(-1, -2)), attn)
    logits_l = torch.cat([logits, logits_pl], dim=2).transpose(-1, -2)
    logits_l = logits_l - torch.max(logits_l, dim=-1, keepdim=True)[0]
    logits_l = clamp_logits(logits_l, attn)
    if mask_v is not None:
        mask_v = torch.cat(
            [mask_v, mask_v.new_zeros(bsz, q_p.shape[-2])], dim=1)
        logits_l = logits_l.masked_fill(mask_v[:, None, None, :],
                                        float('-inf'))
    probs_l = logits_l.softmax(dim=-1)

    # image queries: logits over [L; Pl] (synchronous) or L (reference)
    if prompts_visible_to_image:
        logits_v = torch.cat(
            [logits, clamp_logits(torch.matmul(query, k_p.transpose(-1, -2)),
                            attn)],
            dim=-1)
        values_for_v = torch.cat(
            [value_l, vl_p.expand(bsz, -1, -1, -1)], dim=2)
    else:
        logits_v, values_for_v = logits, value_l
    if image_query_text_mask is not None:
        mask = image_query_text_mask[:, None, None, :]
        logits_v = logits_v + mask.masked_fill(mask == 0, -9e15)
    probs_v = F.softmax(logits_v, dim=-1)

    probs_v = F.dropout(probs_v, p=attn.dropout, training=attn.training)
    probs_l = F.dropout(probs_l, p=attn.dropout, training=attn.training)
    out_v = probs_v @ values_for_v
    out_l = probs_l @ torch.cat([value_v, vv_p.expand(bsz, -1, -1, -1)],
                                dim=2)
    return (attn.out_v_proj(merge_heads(out_v)),
            attn.out_l_proj(merge_heads(out_l)))


def prompt_projections(attn, image_tokens: Tensor,
                       text_tokens: Optional[Tensor]):
    """Per-head projections of the prompt copies that
    :func:`prompted_bi_attention` takes: query (``v_proj(Pv) * scale``) and
    value of the image-side copies and, given ``text_tokens``, key and value
    of the text-side copies (else None: in reference mode no query sees
    them)."""
    heads = attn.num_heads
    projections = (split_heads(attn.v_proj(image_tokens) * attn.scale, heads),
                   split_heads(attn.values_v_proj(image_tokens), heads))
    if text_tokens is None:
        return projections + (None, None)
    return projections + (split_heads(attn.l_proj(text_tokens), heads),
                          split_heads(attn.values_l_proj(text_tokens), heads))


def extend_attention_inputs(vision: Tensor, lang: Tensor,
                            mask_v: Optional[Tensor],
                            mask_l: Optional[Tensor], image_tokens: Tensor,
                            text_tokens: Tensor, adapter,
                            prompts_visible_to_image: bool):
    """The straightforward path's inputs ``[V; Pv]``, ``[L; Pl]`` and their
    masks (``adapter``: the detector's mask conventions). The tokens are one
    set for every image (K, dim), broadcast over the batch, or one per image
    (B, K, dim: a prompt bank's tasks)."""
    batch, num_text = lang.shape[:2]
    k = image_tokens.shape[-2]
    vision = torch.cat(
        [vision, image_tokens.to(vision.dtype).expand(batch, -1, -1)], dim=1)
    lang = torch.cat(
        [lang, text_tokens.to(lang.dtype).expand(batch, -1, -1)], dim=1)
    mask_v = adapter.extend_visual_mask(mask_v, k)
    mask_l = adapter.extend_text_mask(
        mask_l, batch, num_text, k, lang.device,
        visible=prompts_visible_to_image)
    return vision, lang, mask_v, mask_l


def drop_prompt_rows(out_v: Tensor, out_l: Tensor, num_prompts: int):
    """The straightforward path's outputs without the prompt rows."""
    return out_v[:, :-num_prompts], out_l[:, :-num_prompts]
