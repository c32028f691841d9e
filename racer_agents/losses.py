"""Losses of the RACER agent and the supervised baseline, as small pure functions over whole segments.

Discrete CQL(H) (Kumar et al. 2020) with a target network, at every position t of a segment:

    td_t           = 1/2 (Q(s_t, a_t) - y_t)^2,   y_t = r_t + gamma (1 - done_t) Q_target(s_{t+1}, a*_{t+1})
    conservative_t = logsumexp_a Q(s_t, a) - Q(s_t, a_t)
    loss           = mean_t td_t + alpha * mean_t conservative_t

The conservative term may be restricted to some steps (``conservative_mask``): racer-cql applies it to the human
speaker's steps only by default, so that the augmented episodes (random and shifted codes, there to show the
Q-function what worse codes earn) inform the TD term without becoming behaviour the policy is held close to.

with a*_{t+1} = argmax_a Q(s_{t+1}, a) (double DQN, as d3rlpy's DiscreteCQL) or argmax of Q_target. s_{t+1} is
position t + 1 of the same forward pass; the last position bootstraps only if the segment did not end there
(it is left out of the TD term otherwise, since its next state is not in the segment).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CQLLoss:
    total: torch.Tensor
    td: torch.Tensor
    conservative: torch.Tensor
    q_data: torch.Tensor  # mean Q(s_t, a_t)
    q_max: torch.Tensor  # mean max_a Q(s_t, a)

    def metrics(self) -> dict[str, float]:
        return {"losses/total": self.total.item(), "losses/td": self.td.item(),
                "losses/conservative": self.conservative.item(), "q/data": self.q_data.item(),
                "q/max": self.q_max.item()}


def td_targets(q_next_online: torch.Tensor, q_next_target: torch.Tensor, rewards: torch.Tensor,
               dones: torch.Tensor, gamma: float, double_q: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets y_t (B, T) and a mask (B, T) of positions with a target (next state in the segment or done).

    ``q_*`` are (B, T, N) Q-values of the same segment; position t's next state is position t + 1.
    """
    b, t, _ = q_next_target.shape
    choose = q_next_online if double_q else q_next_target
    best = choose[:, 1:].argmax(-1, keepdim=True)  # (B, T-1, 1)
    next_v = torch.zeros(b, t, dtype=q_next_target.dtype, device=q_next_target.device)
    next_v[:, :-1] = q_next_target[:, 1:].gather(-1, best).squeeze(-1)
    y = rewards + gamma * (1.0 - dones) * next_v
    mask = torch.ones_like(rewards)
    mask[:, -1] = dones[:, -1]  # the last position has no next state unless the episode ended there
    return y.detach(), mask


def soft_target_matrix(neighbours: torch.Tensor, eps: float) -> torch.Tensor:
    """(N, N) target distributions: row c puts 1 - eps on code c and eps spread evenly over its neighbours (N, k)
    (e.g. the k nearest codes of the codebook): a similar gesture is almost as right as the speaker's own."""
    n, k = neighbours.shape
    out = torch.zeros(n, n)
    out.scatter_(1, neighbours.long(), eps / k)
    out[torch.arange(n), torch.arange(n)] = 1.0 - eps
    return out


def _label_value(values: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """(B, T) value of the label: values at the action, or their mean under the action's soft target row."""
    if targets is None:
        return values.gather(-1, actions[..., None]).squeeze(-1)
    return (targets.to(values.device)[actions] * values).sum(-1)


def discrete_cql_loss(q: torch.Tensor, q_target: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                      dones: torch.Tensor, gamma: float = 0.99, alpha: float = 1.0, double_q: bool = True,
                      conservative_mask: torch.Tensor | None = None,
                      soft_targets: torch.Tensor | None = None) -> CQLLoss:
    """q, q_target: (B, T, N); actions (B, T) long; rewards, dones (B, T) float; ``conservative_mask`` (B, T) float:
    the steps the conservative term averages over (default: all); ``soft_targets`` (N, N): the conservative term's
    label distribution per action (see :func:`soft_target_matrix`; default: the action itself)."""
    q_data = q.gather(-1, actions[..., None]).squeeze(-1)  # (B, T)
    y, mask = td_targets(q.detach(), q_target.detach(), rewards, dones, gamma, double_q)
    td = (0.5 * (q_data - y) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)
    gap = torch.logsumexp(q, dim=-1) - _label_value(q, actions, soft_targets)  # (B, T)
    conservative = gap.mean() if conservative_mask is None else \
        (gap * conservative_mask).sum() / conservative_mask.sum().clamp_min(1.0)
    return CQLLoss(total=td + alpha * conservative, td=td, conservative=conservative, q_data=q_data.mean().detach(),
                   q_max=q.max(-1).values.mean().detach())


def behaviour_cloning_loss(logits: torch.Tensor, actions: torch.Tensor,
                           soft_targets: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of (B, T, N) logits against the ground-truth codes (B, T), or against their rows of
    ``soft_targets`` (N, N)."""
    if soft_targets is None:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), actions.reshape(-1))
    return -_label_value(F.log_softmax(logits, -1), actions, soft_targets).mean()
