"""GRPO's divergence to the reference model: sampled-token estimators, where the penalty goes, and the trainer.

The R1 objective subtracts ``beta * D(pi || pi_ref)``; TRL offers one ``D``, the k3 estimator in the
loss. Here ``grpo.divergence`` picks any estimator of ``ESTIMATORS`` and places it ``in: loss`` or
``in: reward``; the coefficient stays ``grpo.trainer.beta``.

Every estimator reads only what TRL already computes for each completion token ``y`` (sampled from
the policy ``pi`` given its prefix): ``logp = log pi(y)`` and ``ref_logp = log pi_ref(y)``. With
``r = pi_ref(y) / pi(y) = exp(ref_logp - logp)``, each is a function ``f(r)`` whose mean over
``y ~ pi`` is the divergence it estimates (each function's docstring derives it). None needs the
distributions over the whole vocabulary: a per-token estimate costs a few element-wise operations
on the (batch, completion length) tensors TRL holds anyway, where an exact divergence would need
both models' logits, batch x length x vocabulary floats (64 x 1024 x 152k in float32: 40 GB per
model for a Qwen2.5 batch). ``reverse_kl``, ``forward_kl``, ``jensen_shannon`` and ``total_variation`` compute
the exact values from full log-probabilities, for tests and the ablation (scripts/ablate_divergence.py).

What "unbiased" means here: at each completion position, with the prefix sampled from the policy,
the mean of ``f(r)`` over the next token ``y ~ pi(. | prefix)`` is the divergence between the two
next-token distributions ``pi(. | prefix)`` and ``pi_ref(. | prefix)``, provided the policy's support
covers the reference's (k3, forward_kl, js and tv miss the tokens only the reference can emit). It
is a per-token divergence at policy prefixes, not the divergence of the completions'
distributions. Summed over a completion (``in: reward``), its mean is a sequence-level divergence
only for k1 and k3: the chain rule of the reverse KL gives ``E_pi[sum_t KL_t] = KL(pi(y_1:T) ||
pi_ref(y_1:T))``; forward_kl, js and tv have no such rule along policy prefixes. Sampling from
another distribution than ``pi`` biases every estimator, TRL's k3 included: ``top_p < 1`` or
``top_k > 0`` (the log-probabilities are the full softmax's), or vLLM generating from its own copy
of the weights (TRL's vLLM importance-sampling correction reweights the policy loss, not the
divergence term).

Where the estimate goes (``DivergenceGRPOTrainer`` explains the hooks):

- ``in: loss`` (TRL's place): ``beta * f`` is added to each completion token's loss and reduced
  as the policy loss is (``loss_type``). With ``use_bias_correction_kl`` (TRL's default) the term is
  multiplied by the importance ratio ``pi / pi_old``, which is 1 in value on-policy but carries
  ``grad log pi``: the loss gradient is then ``E[grad f + f grad log pi] = grad E_pi[f]``, the
  gradient of each token's divergence given its prefix, for every estimator. Without it the
  gradient is only ``E[grad f]``: zero for k1, the reverse-KL gradient for k2, the forward-KL
  gradient for k3 (tests/test_divergence.py checks each of these on exact expectations). Either
  way it is a partial gradient of the completion's divergence: it leaves out how a token changes
  the divergence of the tokens after it (Tang & Munos 2025, "On a few pitfalls in KL divergence
  gradient estimation for RL", arXiv 2506.09477).
- ``in: reward`` (verl's ``use_kl_in_reward``): ``beta * sum_t f_t`` over the completion's tokens is
  subtracted from its reward before the group advantages are computed, so the penalty reaches the
  policy through the policy gradient, which counts the later tokens too. With k1 the sum is
  ``log pi(y) / pi_ref(y)`` of the whole completion, and its policy gradient is an unbiased
  gradient of the sequence-level reverse KL (Tang & Munos 2025; Shah et al., "A Comedy of
  Estimators: On KL Regularization in RL Training of LLMs", arXiv 2512.21852, which also finds k3
  in the reward biased); for the other estimators the reward's policy gradient leaves out the
  term ``E[grad sum_t f_t]``, so it is biased. GRPO then centres (and by default scales) the
  penalty with the reward within each group.

Forward KL and Jensen-Shannon regularisers are argued to keep pass@k and forget less than the
reverse KL (Li et al., "The Choice of Divergence", DPH-RL, arXiv 2509.07430); total variation is the
distance DPPO bounds instead of clipping ratios (Qi et al., "Rethinking the Trust Region in LLM
Reinforcement Learning", arXiv 2602.04879; there a trust region to the old policy, here a penalty
to the reference). k1, k2 and k3 are named as in Schulman, "Approximating KL Divergence" (2020).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from trl import GRPOTrainer

from recipe_cli.config import DIVERGENCE_REWARD_PREFIX, DivergenceSettings

LOG_2 = math.log(2.0)


def reverse_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """KL(pi || pi_ref) = sum_y pi(y) log(pi(y) / pi_ref(y)), from log-probabilities over the last dimension.

    >>> p, q = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.9, 0.1]).log()
    >>> round(reverse_kl(p, q).item(), 4), reverse_kl(p, p).item()
    (0.5108, 0.0)
    """
    return (logp.exp() * (logp - ref_logp)).sum(-1)


def forward_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """KL(pi_ref || pi) = sum_y pi_ref(y) log(pi_ref(y) / pi(y)), over the last dimension.

    >>> p, q = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.9, 0.1]).log()
    >>> round(forward_kl(p, q).item(), 4)
    0.3681
    """
    return reverse_kl(ref_logp, logp)


def jensen_shannon(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """JS(pi, pi_ref) = KL(pi || m) / 2 + KL(pi_ref || m) / 2 with m = (pi + pi_ref) / 2; between 0 and log 2.

    >>> p, q = torch.tensor([1.0, 0.0]).log(), torch.tensor([0.0, 1.0]).log()
    >>> round(jensen_shannon(p.clamp(min=-80), q.clamp(min=-80)).item(), 4) == round(math.log(2), 4)  # disjoint
    True
    """
    log_m = torch.logaddexp(logp, ref_logp) - LOG_2
    return 0.5 * (reverse_kl(logp, log_m) + reverse_kl(ref_logp, log_m))


def total_variation(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """TV(pi, pi_ref) = sum_y |pi(y) - pi_ref(y)| / 2; between 0 and 1.

    >>> p, q = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.9, 0.1]).log()
    >>> round(total_variation(p, q).item(), 4)
    0.4
    """
    return 0.5 * (logp.exp() - ref_logp.exp()).abs().sum(-1)


def half_squared_log_ratio(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """E_pi[(log(pi/pi_ref))^2 / 2], what k2 estimates: the reverse KL up to third-order terms.

    >>> p, q = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.55, 0.45]).log()
    >>> round(half_squared_log_ratio(p, q).item(), 5), round(reverse_kl(p, q).item(), 5)
    (0.00505, 0.00503)
    """
    return (logp.exp() * 0.5 * (logp - ref_logp) ** 2).sum(-1)


EXACT_DIVERGENCES = {"reverse_kl": reverse_kl, "forward_kl": forward_kl, "js": jensen_shannon, "tv": total_variation}


def exact_divergences(logp: torch.Tensor, ref_logp: torch.Tensor) -> dict[str, float]:
    """Each exact divergence of ``EXACT_DIVERGENCES``, averaged over the positions (rows) of two log-probability tables.

    >>> p, q = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log(), torch.tensor([[0.5, 0.5], [0.5, 0.5]]).log()
    >>> {name: round(value, 4) for name, value in exact_divergences(p, q).items()}
    {'reverse_kl': 0.184, 'forward_kl': 0.2554, 'js': 0.0509, 'tv': 0.2}
    """
    return {name: divergence(logp, ref_logp).mean().item() for name, divergence in EXACT_DIVERGENCES.items()}


@dataclass(frozen=True)
class Estimator:
    """A per-token estimator of a divergence to the reference, from the sampled token's two log-probabilities."""

    name: str
    estimate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logp, ref_logp) -> f, element-wise
    expectation: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # E_pi[f] over the whole vocabulary
    divergence: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # what it estimates (= expectation: unbiased)

    @property
    def unbiased(self) -> bool:
        return self.expectation is self.divergence


ESTIMATORS: dict[str, Estimator] = {}


def estimator(name: str, divergence: Callable, expectation: Callable | None = None):
    """Register a per-token estimator under ``name``: it estimates ``divergence``, its mean is ``expectation``."""

    def register(function):
        ESTIMATORS[name] = Estimator(name, function, expectation or divergence, divergence)
        return function

    return register


@estimator("k1", reverse_kl)
def k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = log(pi(y) / pi_ref(y)) = -log r: unbiased reverse KL, ``E_pi[k1] = KL(pi || pi_ref)``.

    Negative at tokens the reference prefers, so its variance is high (Schulman 2020). In the loss
    without the importance correction its gradient ``grad log pi`` has mean zero: it needs the
    correction there, and it is the unbiased choice in the reward (Tang & Munos 2025).

    >>> k1(torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0]))
    tensor([ 1., -1.])
    """
    return logp - ref_logp


@estimator("k2", reverse_kl, expectation=half_squared_log_ratio)
def k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2 = (log r)^2 / 2: never negative; biased, ``E_pi[k2] = KL(pi || pi_ref) + O(|log r|^3)``.

    Its plain gradient ``(log pi - log pi_ref) grad log pi`` has mean ``grad KL(pi || pi_ref)``
    exactly, so k2 in the loss with ``use_bias_correction_kl: false`` gives the unbiased reverse-KL
    gradient (verl calls it ``mse``); with the correction the gradient is that of ``E_pi[k2]``.

    >>> k2(torch.tensor([-1.0, -2.0]), torch.tensor([-2.0, -1.0]))
    tensor([0.5000, 0.5000])
    """
    return 0.5 * (ref_logp - logp) ** 2


@estimator("k3", reverse_kl)
def k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = r - 1 - log r: TRL's estimator (verl's ``low_var_kl``); unbiased reverse KL, never negative.

    ``E_pi[r] = sum_y pi_ref(y) = 1``, so ``E_pi[k3] = E_pi[-log r] = KL(pi || pi_ref)``, with lower
    variance than k1 (Schulman 2020). Its plain gradient ``(1 - r) grad log pi`` has mean
    ``-sum_y pi_ref(y) grad log pi(y) = grad KL(pi_ref || pi)``, the forward KL's: the importance
    correction (TRL's default) turns it into the reverse KL's. The expression is TRL's, term for term.

    >>> k3(torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -1.0]))
    tensor([0.0000, 0.7183])
    """
    return torch.exp(ref_logp - logp) - (ref_logp - logp) - 1


@estimator("forward_kl", forward_kl)
def forward_kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """r log r - (r - 1): unbiased forward KL, ``E_pi[f] = KL(pi_ref || pi)``; never negative.

    ``E_pi[r log r] = sum_y pi_ref(y) log(pi_ref(y)/pi(y))`` and ``E_pi[r - 1] = 0``; subtracting
    ``r - 1`` (a control variate, as k3 does for the reverse KL) makes every sample >= 0. The forward
    KL is mass-covering: it penalises dropping what the reference can do (DPH-RL, arXiv 2509.07430).

    >>> forward_kl_estimate(torch.tensor([-1.0, -1.0]), torch.tensor([-1.0, 0.0]))
    tensor([0.0000, 1.0000])
    """
    log_r = ref_logp - logp
    return torch.exp(log_r) * log_r - torch.expm1(log_r)


@estimator("js", jensen_shannon)
def js(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """(r log r - (1 + r) log((1 + r) / 2)) / 2: unbiased Jensen-Shannon divergence, ``E_pi[f] = JS(pi, pi_ref)``.

    With ``m = (pi + pi_ref) / 2``, ``m/pi = (1 + r)/2``: ``KL(pi || m) = E_pi[-log((1 + r)/2)]`` and
    ``KL(pi_ref || m) = E_pi[r log(2r / (1 + r))]``; half their sum is ``E_pi[f]``. ``f`` is convex
    in r with ``f(1) = f'(1) = 0``, so every sample is >= 0, and the divergence is at most log 2:
    a bounded penalty, mode-covering like the forward KL (DPH-RL, arXiv 2509.07430).

    >>> js(torch.tensor([-1.0, -1.0]), torch.tensor([-1.0, 0.0]))
    tensor([0.0000, 0.2063])
    """
    log_r = ref_logp - logp
    r = torch.exp(log_r)
    log_half_one_plus_r = F.softplus(log_r) - LOG_2  # log((1 + r) / 2), stable for large |log r|
    return 0.5 * (r * log_r - (1 + r) * log_half_one_plus_r)


@estimator("tv", total_variation)
def tv(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """|1 - r| / 2: unbiased total variation distance, ``E_pi[f] = sum_y |pi(y) - pi_ref(y)| / 2 = TV``.

    Bounded by 1 (DPPO, arXiv 2602.04879, bounds it instead of clipping ratios). Not differentiable
    where ``r = 1``: at the start of training (``pi = pi_ref``) its gradient is zero, and it then
    pulls back with a constant strength, as an L1 penalty does.

    >>> tv(torch.tensor([-1.0, -1.0]), torch.tensor([-1.0, 0.0]))
    tensor([0.0000, 0.8591])
    """
    return 0.5 * torch.expm1(ref_logp - logp).abs()


def estimate(name: str, logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """The per-token estimate of the divergence ``name`` at the sampled tokens.

    >>> estimate("k1", torch.tensor([-1.0]), torch.tensor([-3.0]))
    tensor([2.])
    """
    return ESTIMATORS[name].estimate(logp, ref_logp)


def sequence_sums(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each completion's sum of a per-token value over its tokens (``mask``: 1 for a completion token).

    >>> sequence_sums(torch.tensor([[1.0, 2.0, 4.0], [1.0, 1.0, 1.0]]), torch.tensor([[1, 1, 0], [1, 0, 0]]))
    tensor([3., 1.])
    """
    return (per_token * mask).sum(-1)


@dataclass
class _Scoring:
    """One call of TRL's per-token log-probability forward pass: its inputs and the log-probabilities it returned."""

    model: Any
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    logits_to_keep: int
    args: tuple
    kwargs: dict
    logps: torch.Tensor


class SequenceDivergence:
    """The ``in: reward`` penalty as a reward function: each completion's ``sum_t f_t``, weighted ``-beta``.

    TRL calls it with the other rewards, after it scored the completions with the reference model
    and before it computes advantages; the trainer supplies the log-probabilities. Its name, which
    TRL logs as ``rewards/divergence_<name>/mean``, is ``divergence_<name>``.
    """

    def __init__(self, trainer: DivergenceGRPOTrainer, name: str):
        self.trainer = trainer
        self.__name__ = f"{DIVERGENCE_REWARD_PREFIX}{name}"

    def __call__(self, completion_ids: list[list[int]], **kwargs) -> list[float]:
        return self.trainer.sequence_divergences(completion_ids)


class DivergenceGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with a chosen divergence to the reference model, in the loss or in the reward.

    TRL 1.16 computes reference log-probabilities only when ``beta != 0``, in
    ``_generate_and_score_completions``, right before ``_calculate_rewards`` and the advantages, and
    adds ``beta * k3`` per token in ``_compute_loss``. This subclass keeps ``beta`` (so the reference
    is loaded and scored: a separate copy for full weights, the base with the adapter disabled or a
    frozen "ref" adapter for LoRA) and overrides as little as it can, copying none of TRL's loss:

    - ``_get_per_token_logps_and_entropies`` (TRL's forward pass) is wrapped to remember each call's
      inputs and log-probabilities, so no forward pass is repeated.
    - ``_compute_loss`` runs TRL's loss with ``self.beta = 0`` (no k3 term), then, ``in: loss``, adds
      ``beta * f`` on the log-probabilities of that same forward pass, times TRL's importance ratio
      when ``use_bias_correction_kl``, reduced as TRL reduces the policy loss for its ``loss_type``
      (``reduce_like_policy_loss``). With k3 this equals TRL's built-in loss (tested to 1e-6).
    - ``in: reward``: a ``SequenceDivergence`` pseudo-reward is appended to the reward functions with
      weight ``-beta`` (appended to ``args.reward_weights`` too), as TRL itself appends environment
      rewards. TRL calls it inside ``_calculate_rewards``, when the last forward pass it made was the
      reference's; the policy's log-probabilities are those TRL computed just before
      (``old_per_token_logps``) when it did, else one extra no-grad forward pass of the policy, as
      costly as the reference's. The penalty thus enters TRL's reward sum (``sum_then_normalize``)
      before the group advantages, and the ``_calculate_rewards`` override only keeps TRL's rule that
      a completion no reward could score gets no advantage (the penalty alone does not make it
      scorable).

    Both log ``divergence/<name>``, the mean per-token estimate over completion tokens, every step.
    """

    def __init__(self, *args, divergence: DivergenceSettings | None = None, **kwargs):
        config = kwargs.get("args")
        if config is None:
            raise TypeError("DivergenceGRPOTrainer takes its GRPOConfig as the keyword argument `args`")
        if divergence is not None and not config.beta:
            raise ValueError(f"divergence {divergence.name} needs a coefficient: set beta > 0 in the GRPOConfig")
        if divergence is None and config.beta:
            divergence = DivergenceSettings(name="k3")  # TRL's own choice when beta > 0
        self.divergence = divergence
        self._scorings: list[_Scoring] = []
        self._penalty_column: int | None = None
        if divergence is not None and divergence.in_ == "reward":
            rewards = kwargs.get("reward_funcs")
            rewards = list(rewards) if isinstance(rewards, list) else [rewards]
            weights = config.reward_weights or [1.0] * len(rewards)
            self._penalty_column = len(rewards)
            kwargs["reward_funcs"] = [*rewards, SequenceDivergence(self, divergence.name)]
            config.reward_weights = [*weights, -config.beta]
        super().__init__(*args, **kwargs)

    @property
    def metric_name(self) -> str | None:
        """The logged metric: ``divergence/<name>``."""
        return f"divergence/{self.divergence.name}" if self.divergence is not None else None

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        result = super()._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, logits_to_keep, *args, **kwargs
        )
        if self.divergence is not None:
            scoring = _Scoring(model, input_ids, attention_mask, logits_to_keep, args, kwargs, result[0])
            self._scorings.append(scoring)
        return result

    def _generate_and_score_completions(self, inputs):
        self._scorings = []
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self._scorings = []  # TRL keeps what it needs in its output; free the rest

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self._penalty_column is not None:
            others = torch.cat([rewards[:, : self._penalty_column], rewards[:, self._penalty_column + 1 :]], dim=1)
            rewards[torch.isnan(others).all(dim=1), self._penalty_column] = torch.nan
        return rewards

    def sequence_divergences(self, completion_ids: list[list[int]]) -> list[float]:
        """Each completion's summed per-token divergence estimate, from the forward passes TRL just made."""
        if not self._scorings:
            raise RuntimeError("the reference log-probabilities were not computed before the rewards (beta is 0?)")
        reference = self._scorings[-1]  # TRL scores the reference last, right before the rewards
        keep = reference.logits_to_keep
        completions = reference.input_ids[:, -keep:]
        for row, ids in enumerate(completion_ids):
            if completions[row, : len(ids)].tolist() != list(ids):
                raise RuntimeError("the scored batch does not match the completions being rewarded (TRL changed?)")
        if len(self._scorings) >= 2:  # TRL scored the policy too (old_per_token_logps): same batch, same weights
            logps = self._scorings[-2].logps
        else:
            # through the whole class chain, so a timer (recipe_cli.step_time) counts it as the forward pass it is
            with torch.no_grad():
                logps, _, _ = self._get_per_token_logps_and_entropies(
                    self.model, reference.input_ids, reference.attention_mask, keep, *reference.args, **reference.kwargs
                )
            self._scorings.pop()  # the reference stays the last pass scored
        mask = reference.attention_mask[:, -keep:].to(logps.dtype)
        per_token = estimate(self.divergence.name, logps, reference.logps)
        self._log_divergence(per_token, mask)
        return sequence_sums(per_token, mask).tolist()

    def _compute_loss(self, model, inputs):
        beta, self.beta = self.beta, 0.0  # TRL's loss without its k3 term
        self._scorings = []
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self.beta = beta
        if self.divergence is None or self.divergence.in_ != "loss":
            self._scorings = []
            return loss
        logps = self._scorings[-1].logps  # the forward pass TRL's loss just made, with its graph
        self._scorings = []
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        per_token = estimate(self.divergence.name, logps, inputs["ref_per_token_logps"])
        self._log_divergence(per_token.detach(), mask)
        if self.args.use_bias_correction_kl:
            per_token = per_token * self.importance_ratio(logps, inputs, mask)
        return loss + beta * self.reduce_like_policy_loss(per_token, mask, inputs)

    def importance_ratio(self, logps: torch.Tensor, inputs: dict, mask: torch.Tensor) -> torch.Tensor:
        """``pi / pi_old`` per token (or sequence), as TRL's ``coef_1``: 1 in value on-policy, with ``grad log pi``."""
        old = inputs.get("old_per_token_logps")
        log_ratio = logps - (logps.detach() if old is None else old)
        if self.importance_sampling_level == "sequence":
            log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
        return torch.exp(log_ratio)

    def reduce_like_policy_loss(self, per_token: torch.Tensor, mask: torch.Tensor, inputs: dict) -> torch.Tensor:
        """Reduce a per-token loss term over the batch as TRL 1.16 reduces its per-token loss for ``loss_type``.

        TRL's reduction is linear in the per-token loss, so TRL's loss with ``beta * k3`` equals its
        loss without plus this reduction of ``beta * k3``; the test of that equality, for every
        ``loss_type``, also guards this function against a TRL release that changes the reduction.
        """
        train = self.model.training
        accumulation = self.current_gradient_accumulation_steps if train else 1.0
        masked = per_token * mask
        if self.loss_type in ("grpo", "sapo"):
            return (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation
        if self.loss_type == "bnpo":
            return masked.sum() / mask.sum().clamp(min=1.0) / accumulation
        if self.loss_type == "dr_grpo":
            return masked.sum() / (per_token.size(0) * self.max_completion_length) / accumulation
        if self.loss_type in ("cispo", "dapo", "vespo"):
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if train:
                normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            return masked.sum() / normalizer
        if self.loss_type == "luspo":
            return masked.sum(-1).mean() / accumulation
        raise ValueError(f"loss_type {self.loss_type!r}: no known reduction for the divergence term")

    def _log_divergence(self, per_token: torch.Tensor, mask: torch.Tensor) -> None:
        """Log ``divergence/<name>``: the mean estimate over every completion token of every process."""
        totals = torch.stack([(per_token * mask).sum(), mask.sum().to(per_token.dtype)])
        totals = self.accelerator.reduce(totals, reduction="sum")
        mode = "train" if self.model.training else "eval"
        self._metrics[mode][self.metric_name].append((totals[0] / totals[1].clamp(min=1.0)).item())
