"""The visual deep prompt (projects/sdpt/methods/visual_prompt.py): Swin's
window attention with prompt tokens, against the formula."""
import torch
from mmdet.models.backbones.swin import WindowMSA

from projects.sdpt.methods.visual_prompt import window_attention_with_prompts


def test_window_attention_with_prompts_against_the_formula():
    torch.manual_seed(0)
    msa = WindowMSA(embed_dims=8, num_heads=2, window_size=(2, 2)).eval()
    torch.nn.init.normal_(msa.relative_position_bias_table)
    images, windows, n, c = 2, 3, 4, 8
    x = torch.randn(images * windows, n, c)
    mask = torch.zeros(windows, n, n)
    mask[1, :2, 2:] = mask[1, 2:, :2] = -100.0  # a shifted window
    # no prompts: mmdet's own attention
    torch.testing.assert_close(
        window_attention_with_prompts(msa, x, mask, []), msa(x, mask))
    shared = torch.randn(3, c)
    per_image = torch.randn(images, 2, c)
    got = window_attention_with_prompts(msa, x, mask, [shared, per_image])
    # the formula, one window and one head at a time
    w_q, w_k, w_v = msa.qkv.weight.split(c)
    b_q, b_k, b_v = msa.qkv.bias.split(c)
    bias = msa.relative_position_bias_table[
        msa.relative_position_index.view(-1)].view(n, n, -1)
    d = c // 2
    for w in range(images * windows):
        tokens = torch.cat([x[w], shared, per_image[w // windows]])
        q = x[w] @ w_q.T + b_q
        k = tokens @ w_k.T + b_k
        v = tokens @ w_v.T + b_v
        heads = []
        for h in range(2):
            s = slice(h * d, (h + 1) * d)
            logits = q[:, s] @ k[:, s].T * d**-0.5
            logits[:, :n] += bias[:, :, h] + mask[w % windows]
            heads.append(logits.softmax(-1) @ v[:, s])
        expected = msa.proj(torch.cat(heads, dim=1))
        torch.testing.assert_close(got[w], expected, rtol=1e-5, atol=1e-5)
