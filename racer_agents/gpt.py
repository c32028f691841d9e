"""The GPT backbone of the RACER Q-network (and of the supervised baseline).

Input for T code steps of a segment:
  * audio tokens: token t projects the speech features of code step t and its lookahead steps
    (8 frames each, (1 + lookahead) * 8 * F values) to the embedding;
  * code tokens: token t embeds the previous code a_{t-1} (a_0 is given at the segment start).
The two streams are concatenated in time, (B, 2T, E), with a learned positional embedding per step and a learned
stream embedding. The attention mask is the paper's 2 x 2 repeated lower-triangular block: a token of step t
attends to the audio and code tokens of steps <= t. The Q-head on the code stream gives Q(s_t, .) over the
codebook, so the output at step t depends only on audio up to t (plus the lookahead folded into its token) and
codes before t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GPTConfig:
    n_codes: int  # N: codebook size (the Q-head's width); the code embedding has N + 1 rows (pad = N)
    audio_dim: int  # values per audio token: (1 + lookahead) * frames_per_code * features
    max_steps: int = 15  # positions: the paper's 15-code training sequences
    n_embd: int = 128
    n_head: int = 4
    n_layer: int = 3
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


#: (embedding, heads, layers). `paper`: embedding 768, 12 heads, dropout 0.1 (the paper); the paper does not
#: state the layer count, we use 6 (~43M parameters for N = 512).
GPT_PRESETS: dict[str, dict] = {
    "paper": {"n_embd": 768, "n_head": 12, "n_layer": 6, "dropout": 0.1},
    "demo": {"n_embd": 128, "n_head": 4, "n_layer": 3, "dropout": 0.1},
    "tiny": {"n_embd": 32, "n_head": 2, "n_layer": 1, "dropout": 0.0},
}


#: how a block applies one of its linear layers to activations (B, n, in) -> (B, n, out)
Linear = Callable[[nn.Linear, torch.Tensor], torch.Tensor]


def whole_batch_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``: one matrix product over the whole batch (training, whole segments, one episode)."""
    return layer(x)


def per_episode_linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` computed episode by episode in one batched call: x (B, n, in) -> (B, n, out), one
    (n, in) @ (in, out) product per episode.

    Why: one product over all B * n rows rounds differently from the B products of n rows that B episodes stepped
    one at a time compute (the BLAS picks its kernel by the row count), so a greedy argmax over near-tied outputs could
    choose another code. A batch of per-episode products gives, row for row, what ``layer(x[b:b + 1])`` gives (checked
    bit for bit by ``tests/test_batched_rollout.py``), which lets lock-step rollouts reproduce one-by-one codes.
    """
    b, n, d_in = x.shape
    d_out = layer.out_features
    weight = layer.weight.t().expand(b, d_in, d_out)  # (B, in, out), no copy
    return torch.baddbmm(layer.bias.expand(b, n, d_out), x, weight)  # (B, n, out)


@torch.no_grad()
def per_episode_step_is_exact(model: GestureGPT, episodes: int = 5, steps: int = 3) -> bool:
    """Whether ``model.step`` of B episodes with :func:`per_episode_linear` gives, bit for bit, what each episode
    stepped alone gives on this machine (its BLAS, its thread count), on random inputs: the kernels a product runs
    are chosen by its shapes and the threads, not by the values, and a lock-step step has no other shapes. The
    model must be in eval mode."""
    gen = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    audio = torch.randn(steps, episodes, model.cfg.audio_dim, generator=gen).to(device)  # (steps, B, audio_dim)
    prev = torch.randint(0, model.cfg.n_codes, (steps, episodes), generator=gen).to(device)  # (steps, B)
    together: list[dict] = [{} for _ in model.blocks]
    alone: list[list[dict]] = [[{} for _ in model.blocks] for _ in range(episodes)]
    for t in range(steps):
        out = model.step(audio[t], prev[t], together, t, per_episode_linear)  # (B, N)
        for b in range(episodes):  # as GPTAgent.step_q feeds one episode: fresh (1, audio_dim) and (1,) tensors
            one = model.step(audio[t, b].clone()[None], prev[t, b].clone()[None], alone[b], t)[0]  # (N,)
            if not torch.equal(out[b], one):
                return False
    return True


def block_mask(steps: int, device=None) -> torch.Tensor:
    """(2T, 2T) bool: True where token i (audio steps 0..T-1, then code steps 0..T-1) may attend to token j."""
    step = torch.arange(2 * steps, device=device) % steps
    return step[:, None] >= step[None, :]


class SelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: dict | None = None,
                linear: Linear = whole_batch_linear) -> torch.Tensor:
        b, n, e = x.shape
        q, k, v = linear(self.qkv, x).split(e, dim=2)
        q, k, v = (t.view(b, n, self.n_head, e // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, n, hd)
        if cache is not None:  # incremental: new tokens attend to everything cached plus themselves
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return linear(self.proj, y.transpose(1, 2).reshape(b, n, e))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(), nn.Linear(4 * cfg.n_embd, cfg.n_embd),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: dict | None = None,
                linear: Linear = whole_batch_linear) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, cache, linear)
        fc, act, out, drop = self.mlp  # self.mlp's layers in order, each product taken as ``linear`` says
        return x + drop(linear(out, act(linear(fc, self.ln2(x)))))


class GestureGPT(nn.Module):
    """Audio tokens (B, T, audio_dim) and previous codes (B, T) -> Q or logits (B, T, N)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_in = nn.Linear(cfg.audio_dim, cfg.n_embd)
        self.code_in = nn.Embedding(cfg.n_codes + 1, cfg.n_embd)
        self.pos = nn.Parameter(torch.zeros(cfg.max_steps, cfg.n_embd))
        self.stream = nn.Parameter(torch.zeros(2, cfg.n_embd))  # audio, code
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.n_codes)
        self.apply(self._init)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.stream, std=0.02)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def _tokens(self, audio: torch.Tensor, prev_codes: torch.Tensor, offset: int,
                linear: Linear = whole_batch_linear) -> torch.Tensor:
        t = audio.shape[1]
        if offset + t > self.cfg.max_steps:
            raise ValueError(f"at most {self.cfg.max_steps} steps fit the context, got {offset + t}")
        pos = self.pos[offset:offset + t]  # (T, E)
        a = linear(self.audio_in, audio) + pos + self.stream[0]  # (B, T, E)
        c = self.code_in(prev_codes) + pos + self.stream[1]  # (B, T, E)
        return self.drop(torch.cat([a, c], dim=1))  # (B, 2T, E)

    def features(self, audio: torch.Tensor, prev_codes: torch.Tensor) -> torch.Tensor:
        """Whole segments: audio (B, T, audio_dim), prev_codes (B, T) -> code-stream features (B, T, E)."""
        t = audio.shape[1]
        x = self._tokens(audio, prev_codes, 0)
        mask = block_mask(t, x.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x[:, t:])

    def forward(self, audio: torch.Tensor, prev_codes: torch.Tensor) -> torch.Tensor:
        """Whole segments: audio (B, T, audio_dim), prev_codes (B, T) -> Q or logits (B, T, N), one pass."""
        return self.head(self.features(audio, prev_codes))

    def prefill(self, audio: torch.Tensor, prev_codes: torch.Tensor, caches: list[dict]) -> torch.Tensor:
        """Fill empty ``caches`` with a whole prefix in one masked pass: (B, T, audio_dim), (B, T) -> (B, T, N).

        Later ``step`` calls attend to every cached token unmasked, which is right because all of them belong to
        earlier steps; their order in the cache does not matter.
        """
        t = audio.shape[1]
        x = self._tokens(audio, prev_codes, 0)
        mask = block_mask(t, x.device)
        for block, cache in zip(self.blocks, caches):
            x = block(x, mask, cache)
        return self.head(self.ln_f(x[:, t:]))

    def step(self, audio: torch.Tensor, prev_code: torch.Tensor, caches: list[dict], position: int,
             linear: Linear = whole_batch_linear) -> torch.Tensor:
        """One more step with a key/value cache: audio (B, audio_dim), prev_code (B,) -> (B, N).

        ``caches`` holds one dict per layer (start with ``[{} for _ in range(n_layer)]``); ``position`` is the
        number of steps already in the cache. Equal to ``forward`` on the whole prefix, at a fraction of the cost.
        ``linear=per_episode_linear`` steps B episodes so that each row is bit for bit what stepping that episode
        alone (B = 1) gives (lock-step evaluation rollouts).
        """
        x = self._tokens(audio[:, None], prev_code[:, None], position, linear)  # (B, 2, E): this step's audio, code
        for block, cache in zip(self.blocks, caches):
            x = block(x, None, cache, linear)  # every cached token is of an earlier step: nothing to mask
        h = self.ln_f(x[:, 1])  # (B, E): the code token of this step
        if linear is whole_batch_linear:
            return self.head(h)  # (B, N)
        return linear(self.head, h[:, None])[:, 0]  # (B, N), as B separate one-row products

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def audio_token_dim(lookahead: int, frames_per_code: int, n_features: int) -> int:
    return (1 + lookahead) * frames_per_code * n_features
