"""Where each detector fuses image and text, and how its masks read.

GLIP and Grounding DINO both fuse with mmdet's ``BiMultiHeadAttention``; they
differ in where those layers sit, in their widths and in their mask
conventions. A :class:`DetectorAdapter` holds exactly those differences, so a
prompt method is written once against :class:`FusionLayer`.
"""
import functools
import weakref
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn as nn
from mmdet.models.backbones import SwinTransformer
from mmdet.models.detectors import GLIP, GroundingDINO
from mmdet.models.utils.vlfuse_helper import BiMultiHeadAttention, VLFuse
from torch import Tensor
from torch.utils.checkpoint import checkpoint


@dataclass
class FusionLayer:
    """One image-text fusion attention of a detector."""
    index: int  # position among the detector's fusion layers
    name: str  # qualified module name of the BiMultiHeadAttention
    attention: BiMultiHeadAttention
    # The module a detector wraps in activation checkpointing around this
    # attention (None when it has no checkpointing); see
    # ``DetectorAdapter.make_checkpointing_gradient_safe``.
    checkpointed: Optional[nn.Module]

    @property
    def v_dim(self) -> int:
        return self.attention.v_dim

    @property
    def l_dim(self) -> int:
        return self.attention.l_dim

    @property
    def embed_dim(self) -> int:
        return self.attention.embed_dim


def select_fusion_layers(all_layers: List[FusionLayer],
                         layers) -> List[FusionLayer]:
    """``'all'`` of a detector's fusion layers, or those at the indices
    ``layers`` (the ``prompt.layers`` option of every fusion method)."""
    if layers == 'all':
        return list(all_layers)
    if isinstance(layers, str):
        raise ValueError(
            f"prompt.layers must be 'all' or a list of fusion layer "
            f'indices, got {layers!r}')
    chosen = []
    for i in layers:
        if not -len(all_layers) <= i < len(all_layers):
            raise ValueError(
                f'prompt.layers names fusion layer {i}, but the detector '
                f'has {len(all_layers)} (indices 0..'
                f'{len(all_layers) - 1}).')
        chosen.append(all_layers[i])
    return chosen


def _non_reentrant_checkpoint_forward(original_forward, weak_module, *args,
                                      **kwargs):
    module = weak_module()
    if not (module.training and torch.is_grad_enabled()):
        return original_forward(module, *args, **kwargs)
    return checkpoint(
        original_forward, module, *args, use_reentrant=False, **kwargs)


def use_non_reentrant_checkpoint(module: nn.Module) -> None:
    """Checkpoint ``module`` with torch's non-reentrant checkpoint.

    Why: the reentrant checkpoint (``torch.utils.checkpoint`` with
    ``use_reentrant=True``, which GLIP's ``VLFuse`` uses) and fairscale's
    ``checkpoint_wrapper`` (Grounding DINO's ``num_cp``) decide whether the
    output needs a gradient from the *inputs* only. With a frozen model in
    front of the fusion, no input requires grad, so parameters inside the
    checkpointed block (the prompts) silently get no gradient. The
    non-reentrant variant records the recomputation in the autograd graph and
    handles parameters correctly, with the same memory saving.

    Only this instance's ``forward`` is replaced (as fairscale does itself);
    parameter names and the class are untouched, so checkpoints still match.
    """
    original_forward = type(module).forward
    module.forward = functools.partial(_non_reentrant_checkpoint_forward,
                                       original_forward,
                                       weakref.ref(module))


class DetectorAdapter:
    """Model-specific knowledge a fusion-space prompt needs."""

    #: short name written into prompt checkpoints
    detector_name = ''

    def fusion_layers(self, detector: nn.Module) -> List[FusionLayer]:
        raise NotImplementedError

    def make_checkpointing_gradient_safe(self, layer: FusionLayer) -> None:
        raise NotImplementedError

    def prediction_layer_patterns(self) -> List[str]:
        """Regexes of the final prediction layers' parameter names (what
        linear probing trains)."""
        raise NotImplementedError

    def detection_head_patterns(self) -> List[str]:
        """Regexes of the detection head's parameter names: what the public
        SDPT training command tunes beside the prompts."""
        raise NotImplementedError

    # Both detectors embed text with mmdet's ``BertModel`` and see images
    # through mmdet's ``SwinTransformer`` (in every released config).
    def text_encoder(self, detector: nn.Module) -> nn.Module:
        """mmdet's ``BertEncoder``: token ids in (its input dict), the
        ``embedded`` / ``hidden`` features the detectors read out."""
        backbone = getattr(getattr(detector, 'language_model', None),
                           'language_backbone', None)
        encoder = getattr(backbone, 'body', None)
        if not hasattr(encoder, 'model'):
            raise TypeError(
                f'{self.detector_name}: text prompts need mmdet\'s BertModel '
                f'as model.detector.language_model (type=\'BertModel\').')
        return encoder

    def text_input_embeddings(self, detector: nn.Module) -> nn.Embedding:
        """The word embedding table of the text encoder."""
        return self.text_encoder(detector).model.get_input_embeddings()

    def text_width(self, detector: nn.Module) -> int:
        """Width of the text encoder's output features."""
        return self.text_input_embeddings(detector).embedding_dim

    def image_backbone(self, detector: nn.Module) -> nn.Module:
        """The Swin backbone visual prompts go into."""
        backbone = detector.backbone
        if not isinstance(backbone, SwinTransformer):
            raise TypeError(
                f'Visual prompts support a SwinTransformer backbone, this '
                f'{self.detector_name} has {type(backbone).__name__}; set '
                f"model.detector.backbone.type='SwinTransformer'.")
        return backbone

    # Masks. ``BiMultiHeadAttention`` applies the visual mask with
    # ``masked_fill(mask, -inf)`` (bool, True = padding) to the text->image
    # logits, and the text mask additively to the image->text logits: entries
    # equal to 0 get -9e15, every other entry is added as its value.
    def extend_visual_mask(self, mask: Optional[Tensor],
                           num_prompts: int) -> Optional[Tensor]:
        """Visual mask with ``num_prompts`` visible entries appended."""
        if mask is None:
            return None
        return torch.cat([mask, mask.new_zeros(mask.shape[0], num_prompts)],
                         dim=1)

    def fit_detections_per_image(self, detector: nn.Module) -> None:
        """Let ``detector`` keep at most what exists per image: a head that
        takes the top ``test_cfg.max_per_img`` of (queries x classes) would
        fail on a dataset with few classes. Nothing by default."""

    def separate_captions(self, detector: nn.Module) -> List:
        """Make each image's result independent of the captions of the
        other images in its batch (they differ only in a prompt bank's
        mixed-task batches). Returns hook handles (``remove()`` undoes it).
        Nothing by default: the detector already keeps them apart."""
        return []

    def extend_text_mask(self, mask: Optional[Tensor], batch_size: int,
                         num_text: int, num_prompts: int, device,
                         visible: bool) -> Optional[Tensor]:
        """Text mask with ``num_prompts`` entries appended, visible to image
        queries or not; original entries behave exactly as before."""
        raise NotImplementedError


class GLIPAdapter(DetectorAdapter):
    """GLIP (early_fuse=True): one ``VLFuse`` per DyHead block of
    ``bbox_head.head.dyhead_tower``; integer text mask, 1 = real token,
    0 = padding; no visual mask."""
    detector_name = 'GLIP'

    def fusion_layers(self, detector):
        layers = []
        for name, module in detector.named_modules():
            if isinstance(module, VLFuse):
                layers.append(
                    FusionLayer(
                        index=len(layers),
                        name=f'{name}.b_attn.attn',
                        attention=module.b_attn.attn,
                        checkpointed=(module if module.use_checkpoint
                                      else None)))
        if not layers:
            raise ValueError(
                'This GLIP has no image-text fusion layer (bbox_head.'
                'early_fuse=False, as in GLIP-T(A)). Fusion-space prompts '
                'need the fusion attention: use a GLIP-T(B), GLIP-T(C) or '
                'GLIP-L config, or set model.detector.bbox_head.early_fuse='
                'True.')
        return layers

    def make_checkpointing_gradient_safe(self, layer):
        vlfuse = layer.checkpointed
        if vlfuse is None:
            return
        # VLFuse calls torch's reentrant checkpoint around ``b_attn``: switch
        # it off and checkpoint the same block non-reentrantly instead.
        vlfuse.use_checkpoint = False
        use_non_reentrant_checkpoint(vlfuse.b_attn)

    def prediction_layer_patterns(self):
        # GLIP's linear probing: the head's box and centerness convolutions,
        # the text projection of the alignment score and its scale and
        # biases (``VLFusionModule``); the per-level box ``scales`` and the
        # DyHead tower stay frozen.
        return [
            r'^bbox_head\.head\.(bbox_pred|centerness|'
            r'dot_product_projection_text)\.',
            r'^bbox_head\.head\.(log_scale|bias_lang|bias0)$'
        ]

    def detection_head_patterns(self):
        # The DyHead tower (its fusion layers included) and the prediction
        # layers: everything of ``bbox_head``.
        return [r'^bbox_head\.']

    def extend_text_mask(self, mask, batch_size, num_text, num_prompts,
                         device, visible):
        if mask is None:
            if visible:
                return None
            mask = torch.ones(batch_size, num_text, dtype=torch.long,
                              device=device)
        extra = mask.new_full((mask.shape[0], num_prompts),
                              1 if visible else 0)
        return torch.cat([mask, extra], dim=1)


class GroundingDINOAdapter(DetectorAdapter):
    """Grounding DINO: ``encoder.fusion_layers[*].attn``; boolean masks where
    True means padding, for text and for the visual tokens.

    mmdet quirk kept as is: the text mask goes through the additive branch of
    ``BiMultiHeadAttention``, where a bool mask turns into +1 on every entry
    (``masked_fill(mask == 0, -9e15)`` on a bool tensor yields True), so the
    base model never masks text padding for image queries. Extending it with
    any bool value keeps that. To hide prompt entries (reference mode) the mask
    becomes an integer one: 1 on every original entry (the same +1 shift) and 0
    on the prompts.
    """
    detector_name = 'GroundingDINO'

    def fusion_layers(self, detector):
        fusion = getattr(getattr(detector, 'encoder', None), 'fusion_layers',
                         None)
        if not fusion:
            raise ValueError(
                'This Grounding DINO encoder has no fusion layers '
                '(encoder.fusion_layers is empty): fusion-space prompts need '
                'them; check model.detector.encoder.fusion_layer_cfg.')
        layers = []
        for i, block in enumerate(fusion):
            wrapped = 'forward' in vars(block)  # fairscale checkpoint_wrapper
            layers.append(
                FusionLayer(
                    index=i,
                    name=f'encoder.fusion_layers.{i}.attn',
                    attention=block.attn,
                    checkpointed=block if wrapped else None))
        return layers

    def make_checkpointing_gradient_safe(self, layer):
        if layer.checkpointed is not None:
            use_non_reentrant_checkpoint(layer.checkpointed)

    def prediction_layer_patterns(self):
        # The classification (``ContrastiveEmbed``: its learnable logit
        # scale, and bias when configured) and box-regression branches of
        # every decoder layer and of the encoder's proposals.
        return [r'^bbox_head\.(cls_branches|reg_branches)\.']

    def detection_head_patterns(self):
        # The decoder (its query embeddings and reference points included)
        # and the heads.
        return [r'^decoder\.', r'^bbox_head\.', r'^query_embedding\.']

    def fit_detections_per_image(self, detector):
        # The head takes the top ``max_per_img`` (300 in mmdet's configs) of
        # num_queries x num_classes scores: fewer exist with few classes (a
        # one-class dataset on 100 queries) and topk fails. Keep all there
        # are then, for this call only.
        head = detector.bbox_head
        head._predict_by_feat_single = functools.partial(
            _predict_at_most_available,
            type(head)._predict_by_feat_single.__get__(head))

    def separate_captions(self, detector):
        # Two places where mmdet's Grounding DINO mixes the captions of a
        # batch; both are no-ops when every image has the same caption.
        # 1. The bool text mask (True = padding) reaches the image queries
        #    of the fusion attention through the additive branch as +1 on
        #    every entry (class docstring): padding gets attention whenever
        #    captions of different lengths share a batch. An integer mask,
        #    1 on tokens and 0 on padding, gives the tokens the same +1 and
        #    masks the padding.
        # 2. The encoder's text layers get the per-caption attention masks
        #    as ``masks.repeat(heads, 1, 1)``, ordered (head, image), where
        #    ``nn.MultiheadAttention`` reads (image, head): heads of one
        #    image use other images' masks. Reordered here.
        handles = [
            layer.attention.register_forward_pre_hook(
                _integer_text_mask, with_kwargs=True)
            for layer in self.fusion_layers(detector)
        ]
        handles += [
            text_layer.register_forward_pre_hook(
                _mask_per_image_then_head, with_kwargs=True)
            for text_layer in getattr(detector.encoder, 'text_layers', [])
        ]
        return handles

    def extend_text_mask(self, mask, batch_size, num_text, num_prompts,
                         device, visible):
        if mask is not None and mask.dtype != torch.bool:
            # the integer mask of ``separate_captions`` (1 = attend)
            return torch.cat([
                mask,
                mask.new_full((mask.shape[0], num_prompts),
                              1 if visible else 0)
            ], dim=1)
        if visible:
            if mask is None:
                return None
            return torch.cat(
                [mask, mask.new_zeros(mask.shape[0], num_prompts)], dim=1)
        ones = torch.ones(batch_size, num_text, dtype=torch.long,
                          device=device)
        return torch.cat(
            [ones, ones.new_zeros(batch_size, num_prompts)], dim=1)


def _predict_at_most_available(predict, cls_score, bbox_pred,
                                token_positive_maps, img_meta, rescale=True):
    """``predict`` (a Grounding DINO head's ``_predict_by_feat_single``) with
    ``test_cfg.max_per_img`` capped at the scores that exist."""
    classes = len(token_positive_maps) if token_positive_maps else 1
    available = len(cls_score) * classes
    test_cfg = predict.__self__.test_cfg
    configured = test_cfg.get('max_per_img', len(cls_score))
    if configured <= available:
        return predict(cls_score, bbox_pred, token_positive_maps, img_meta,
                       rescale)
    test_cfg['max_per_img'] = available
    try:
        return predict(cls_score, bbox_pred, token_positive_maps, img_meta,
                       rescale)
    finally:
        test_cfg['max_per_img'] = configured


def _integer_text_mask(module, args, kwargs):
    """Forward pre-hook of a Grounding DINO fusion attention: its bool text
    mask (True = padding) as an integer one (1 = token, 0 = padding)."""
    if 'attention_mask_l' in kwargs:
        mask = kwargs['attention_mask_l']
        if mask is not None and mask.dtype == torch.bool:
            kwargs = dict(kwargs, attention_mask_l=(~mask).long())
        return args, kwargs
    if len(args) > 3 and args[3] is not None and args[3].dtype == torch.bool:
        args = args[:3] + ((~args[3]).long(), ) + tuple(args[4:])
    return args, kwargs


def _mask_per_image_then_head(module, args, kwargs):
    """Forward pre-hook of a Grounding DINO encoder text layer: its
    ``attn_mask`` built as ``masks.repeat(heads, 1, 1)`` (head-major)
    reordered to the image-major layout ``nn.MultiheadAttention`` reads."""
    mask, query = kwargs.get('attn_mask'), kwargs.get('query')
    if mask is None or query is None:
        return args, kwargs
    batch = query.shape[0]
    heads = mask.shape[0] // batch
    mask = mask.view(heads, batch, *mask.shape[1:]).transpose(0, 1)
    return args, dict(kwargs, attn_mask=mask.reshape(batch * heads,
                                                     *mask.shape[2:]))


def detector_adapter_for(detector: nn.Module) -> DetectorAdapter:
    """The adapter of an mmdet GLIP or Grounding DINO instance."""
    if isinstance(detector, GroundingDINO):
        return GroundingDINOAdapter()
    if isinstance(detector, GLIP):
        return GLIPAdapter()
    raise TypeError(
        f'Fusion-space prompts support mmdet GLIP and GroundingDINO, got '
        f'{type(detector).__name__}. Set model.detector to a GLIP or '
        f'Grounding DINO config.')
