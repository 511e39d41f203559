#!/usr/bin/env python3
"""The DPO step of bench/dpo.ts in PyTorch, for comparison (not part of npm test).

    /usr/bin/python3 bench/torch/dpo_step.py --model gpt2-124m [--steps 3] [--warmup 3]
        [--threads 2] [--config-json '{...}'] [--gemm-gflops X]
        [--pairs 4] [--seq-len 256] [--prompt-len 64]

Same step as dpo-ts: policy forward + backward over chosen and rejected together (one forward
over 2B sequences), reference log-probs precomputed (fed as a tensor), log-probs summed over the
completion positions only (only those positions go through lm_head, as in dpo-ts; TRL computes
logits for every position), sigmoid DPO loss (beta 0.1), clip_grad_norm_(1.0), AdamW (weight
decay 0). Random weights N(0, 0.02), norms 1, biases 0; random token ids; batch 4 pairs of 256
tokens, prompt 64 by default (bench/dpo.ts passes its shape: the long-prompt shape is prompt 384,
completions 64). As TRL's DPOTrainer (concatenated_forward): chosen and rejected are concatenated
into one batch of 2B rows, each row the prompt followed by its completion, and run through the
model in one forward. Compact GPT-2 and Llama modules written like transformers' (transformers is
not installed): GPT-2 with Conv1D-layout weights and gelu_new, Llama with RMSNorm, rotate_half
RoPE, repeat_kv grouped-query attention, SwiGLU, tied embeddings.

Prints one JSON line with the fields of bench/dpo.ts. mfu is relative to --gemm-gflops when
given (bench/dpo.ts passes the ONNX Runtime gemm figure of the same round, so both mfu figures
share one denominator); otherwise to torch's own 512x768x3072 matmul, measured here.
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PAIRS, SEQ_LEN, PROMPT_LEN = 4, 256, 64
BETA, LR = 0.1, 1e-6
GEMM = (512, 768, 3072)

CONFIGS = {
    'gpt2-124m': dict(model_type='gpt2', vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024,
                      layer_norm_epsilon=1e-5),
    'smollm2-135m': dict(model_type='llama', vocab_size=49152, hidden_size=576, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536,
                         tie_word_embeddings=True, rope_theta=100000.0, rms_norm_eps=1e-5),
    'quickstart': dict(model_type='gpt2', vocab_size=50257, n_embd=128, n_layer=4, n_head=4, n_positions=256,
                       layer_norm_epsilon=1e-5),
}


class Conv1D(nn.Module):
    """transformers' Conv1D: weight [in, out], y = x @ W + b."""

    def __init__(self, nin, nout):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nin, nout))
        self.bias = nn.Parameter(torch.zeros(nout))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).view(*x.shape[:-1], -1)


def causal_padding_mask(attention_mask, t):
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    return causal[None, None] & attention_mask[:, None, None, :].bool()  # [N, 1, T, T]


def attend(q, k, v, mask, scale):
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.matmul(F.softmax(scores, dim=-1), v)


class GPT2Block(nn.Module):
    def __init__(self, d, heads, eps):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        self.c_fc = Conv1D(d, 4 * d)
        self.mlp_proj = Conv1D(4 * d, d)

    def forward(self, h, mask):
        n, t, d = h.shape
        hd = d // self.heads
        q, k, v = self.c_attn(self.ln_1(h)).split(d, dim=2)
        split = lambda x: x.view(n, t, self.heads, hd).transpose(1, 2)
        a = attend(split(q), split(k), split(v), mask, 1 / math.sqrt(hd))
        h = h + self.c_proj(a.transpose(1, 2).reshape(n, t, d))
        return h + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(h)), approximate='tanh'))


class GPT2(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['n_embd']
        self.wte = nn.Embedding(c['vocab_size'], d)
        self.wpe = nn.Embedding(c['n_positions'], d)
        self.h = nn.ModuleList(GPT2Block(d, c['n_head'], c.get('layer_norm_epsilon', 1e-5)) for _ in range(c['n_layer']))
        self.ln_f = nn.LayerNorm(d, eps=c.get('layer_norm_epsilon', 1e-5))

    def hidden(self, ids, attention_mask):
        t = ids.shape[1]
        h = self.wte(ids) + self.wpe(torch.arange(t))[None]
        mask = causal_padding_mask(attention_mask, t)
        for block in self.h:
            h = block(h, mask)
        return self.ln_f(h)

    def lm_head(self, x):
        return x @ self.wte.weight.t()


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.heads, self.kv = c['hidden_size'], c['num_attention_heads'], c['num_key_value_heads']
        self.hd = d // self.heads
        inter, eps = c['intermediate_size'], c.get('rms_norm_eps', 1e-6)
        self.q_proj = nn.Linear(d, self.heads * self.hd, bias=False)
        self.k_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.kv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.heads * self.hd, d, bias=False)
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)
        self.input_layernorm = RMSNorm(d, eps)
        self.post_attention_layernorm = RMSNorm(d, eps)

    def forward(self, h, mask, cos, sin):
        n, t, d = h.shape
        a = self.input_layernorm(h)
        q = self.q_proj(a).view(n, t, self.heads, self.hd).transpose(1, 2)
        k = self.k_proj(a).view(n, t, self.kv, self.hd).transpose(1, 2)
        v = self.v_proj(a).view(n, t, self.kv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv  # transformers' repeat_kv
        k = k[:, :, None].expand(n, self.kv, rep, t, self.hd).reshape(n, self.heads, t, self.hd)
        v = v[:, :, None].expand(n, self.kv, rep, t, self.hd).reshape(n, self.heads, t, self.hd)
        o = attend(q, k, v, mask, 1 / math.sqrt(self.hd))
        h = h + self.o_proj(o.transpose(1, 2).reshape(n, t, d))
        b = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(b)) * self.up_proj(b))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        self.embed_tokens = nn.Embedding(c['vocab_size'], d)
        self.layers = nn.ModuleList(LlamaLayer(c) for _ in range(c['num_hidden_layers']))
        self.norm = RMSNorm(d, c.get('rms_norm_eps', 1e-6))
        hd = d // c['num_attention_heads']
        self.register_buffer('inv_freq', 1.0 / (c.get('rope_theta', 10000.0) ** (torch.arange(0, hd, 2).float() / hd)))
        assert c.get('tie_word_embeddings', False), 'bench: untied Llama not needed'

    def hidden(self, ids, attention_mask):
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t).float(), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        h = self.embed_tokens(ids)
        mask = causal_padding_mask(attention_mask, t)
        for layer in self.layers:
            h = layer(h, mask, cos, sin)
        return self.norm(h)

    def lm_head(self, x):
        return x @ self.embed_tokens.weight.t()


def init_weights(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.fill_(1.0 if name.endswith('weight') else 0.0)  # norms 1, biases 0
            else:
                p.normal_(0.0, 0.02, generator=g)


def random_batch(vocab):
    g = torch.Generator().manual_seed(7)
    comp = SEQ_LEN - PROMPT_LEN
    prompts = torch.randint(vocab, (PAIRS, PROMPT_LEN), generator=g)
    chosen = torch.randint(vocab, (PAIRS, comp), generator=g)
    rejected = torch.randint(vocab, (PAIRS, comp), generator=g)
    # Sequence n = k*B + i: rows 0..B-1 chosen, B..2B-1 rejected (as dpo-ts's collate).
    ids = torch.cat([torch.cat([prompts, chosen], 1), torch.cat([prompts, rejected], 1)], 0)
    attention_mask = torch.ones_like(ids, dtype=torch.float32)
    # Positions whose logits predict a completion token: t = PROMPT_LEN-1 .. T-2.
    loss_mask = torch.zeros_like(ids, dtype=torch.bool)
    loss_mask[:, PROMPT_LEN - 1:SEQ_LEN - 1] = True
    flat_pos = loss_mask.flatten().nonzero().squeeze(1)
    labels = torch.zeros_like(ids)
    labels[:, :-1] = ids[:, 1:]
    targets = labels.flatten()[flat_pos]
    segments = flat_pos // SEQ_LEN
    lengths = loss_mask.sum(1).float()
    ref_logps = -lengths * math.log(vocab) + torch.arange(ids.shape[0]).remainder(3).float()
    return ids, attention_mask, flat_pos, targets, segments, ref_logps


def dpo_loss(model, batch):
    ids, attention_mask, positions, targets, segments, ref_logps = batch
    n = ids.shape[0]
    h = model.hidden(ids, attention_mask)
    picked = h.reshape(-1, h.shape[-1]).index_select(0, positions)
    logits = model.lm_head(picked)  # [M, V]: completion positions only
    token_logps = torch.gather(logits.log_softmax(-1), 1, targets[:, None]).squeeze(1)
    logps = torch.zeros(n).index_add(0, segments, token_logps)
    pc, pr = logps[:PAIRS], logps[PAIRS:]
    rc, rr = ref_logps[:PAIRS], ref_logps[PAIRS:]
    return -F.logsigmoid(BETA * ((pc - rc) - (pr - rr))).mean()


def flops(model, c):
    params = sum(p.numel() for p in model.parameters())
    embed = sum(p.numel() for n, p in model.named_parameters() if n in ('wte.weight', 'wpe.weight', 'embed_tokens.weight'))
    d = c.get('n_embd', c.get('hidden_size'))
    layers = c.get('n_layer', c.get('num_hidden_layers'))
    n_seq, tokens = 2 * PAIRS, 2 * PAIRS * SEQ_LEN
    scored = n_seq * (SEQ_LEN - PROMPT_LEN)
    total = 6 * (params - embed) * tokens + 6 * c['vocab_size'] * d * scored + 12 * layers * d * SEQ_LEN ** 2 * n_seq
    return params, tokens, total


def gemm_gflops():
    m, k, n = GEMM
    a, b = torch.randn(m, k), torch.randn(k, n)
    ts = []
    for i in range(13):
        t0 = time.perf_counter()
        torch.mm(a, b)
        if i >= 3:
            ts.append(time.perf_counter() - t0)
    return 2 * m * k * n / statistics.median(ts) / 1e9


def main():
    global PAIRS, SEQ_LEN, PROMPT_LEN
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default='gpt2-124m')
    ap.add_argument('--config-json')
    ap.add_argument('--steps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--gemm-gflops', type=float)
    ap.add_argument('--pairs', type=int, default=PAIRS)
    ap.add_argument('--seq-len', type=int, default=SEQ_LEN)
    ap.add_argument('--prompt-len', type=int, default=PROMPT_LEN)
    a = ap.parse_args()
    PAIRS, SEQ_LEN, PROMPT_LEN = a.pairs, a.seq_len, a.prompt_len
    if not 0 < PROMPT_LEN < SEQ_LEN:
        ap.error(f'--prompt-len must be in 1..{SEQ_LEN - 1}')
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = json.loads(a.config_json) if a.config_json else CONFIGS[a.model]
    model = GPT2(c) if c['model_type'] == 'gpt2' else Llama(c)
    init_weights(model)
    batch = random_batch(c['vocab_size'])
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    times, loss = [], float('nan')
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        l = dpo_loss(model, batch)
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = l.item()
        ms = (time.perf_counter() - t0) * 1000
        if i >= a.warmup:
            times.append(ms)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    own_gemm = gemm_gflops()
    ref_gemm = a.gemm_gflops or own_gemm
    params, tokens, total = flops(model, c)
    ms = statistics.median(times)
    achieved = total / ms / 1e6
    print(json.dumps(dict(
        bench='dpo_step', impl='torch', model=a.model, params=params,
        tokens_per_second=round(tokens * 1000 / ms, 1), ms_per_step=round(ms, 1), peak_rss_mb=round(peak, 1),
        mfu=round(achieved / ref_gemm, 3), achieved_gflops=round(achieved, 1), gemm_gflops=round(ref_gemm, 1),
        torch_gemm_gflops=round(own_gemm, 1), step_gflop=round(total / 1e9, 1), threads=a.threads,
        batch_pairs=PAIRS, seq_len=SEQ_LEN, prompt_len=PROMPT_LEN, warmup=a.warmup, steps=a.steps,
        step_ms=[round(t) for t in times], loss=round(loss, 4), torch=torch.__version__,
    )), flush=True)


if __name__ == '__main__':
    main()
