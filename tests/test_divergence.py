"""GRPO's divergence to the reference model: estimators against exact divergences, the trainer against TRL's loss.

The estimator tests are tensor math on small categorical distributions (the whole vocabulary fits
in a vector, so every expectation is computed exactly); the trainer tests build the tiny model.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from recipe_cli.config import DIVERGENCES, validate_recipe
from recipe_cli.divergence import ESTIMATORS, estimate, forward_kl, reverse_kl
from recipe_cli.errors import RecipeError

NAMES = sorted(ESTIMATORS)
UNBIASED = [name for name in NAMES if ESTIMATORS[name].unbiased]


def distributions(vocab: int = 6, rows: int = 1, seed: int = 0, spread: float = 1.0) -> tuple:
    """Log-probabilities of a policy and a reference over a small vocabulary (float64)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, rows, vocab, generator=generator, dtype=torch.float64) * spread
    policy, reference = torch.log_softmax(logits, dim=-1)
    return policy, reference


def test_every_schema_name_has_an_estimator():
    assert set(ESTIMATORS) == set(DIVERGENCES)
    assert [name for name in NAMES if not ESTIMATORS[name].unbiased] == ["k2"]


@pytest.mark.parametrize("name", NAMES)
def test_the_mean_over_the_vocabulary_is_the_divergence(name):
    """sum_y pi(y) f(y), computed exactly over the vocabulary, equals the divergence the estimator names."""
    policy, reference = distributions(vocab=7, rows=5, seed=1)
    mean = (policy.exp() * estimate(name, policy, reference)).sum(-1)
    torch.testing.assert_close(mean, ESTIMATORS[name].expectation(policy, reference), rtol=1e-9, atol=1e-12)
    if ESTIMATORS[name].unbiased:
        torch.testing.assert_close(mean, ESTIMATORS[name].divergence(policy, reference), rtol=1e-9, atol=1e-12)


def test_k2_is_biased_but_second_order_close():
    """E_pi[k2] - KL is third-order in log(pi/pi_ref): its share of the KL shrinks in proportion to the distance."""

    def relative_gap(spread: float) -> torch.Tensor:
        policy, reference = distributions(vocab=7, rows=3, seed=2, spread=spread)
        kl = reverse_kl(policy, reference)
        return ((ESTIMATORS["k2"].expectation(policy, reference) - kl).abs() / kl).max()

    assert relative_gap(1.5) > 0.05  # biased: visibly so for distant distributions
    assert relative_gap(0.02) < relative_gap(0.2) / 5 < 0.02


SAMPLES = 400_000
# A policy that moved towards the first tokens, and a reference that prefers the last ones (r up to 10).
POLICY = torch.tensor([0.5, 0.3, 0.1, 0.05, 0.03, 0.02], dtype=torch.float64).log()
REFERENCE = torch.tensor([0.05, 0.15, 0.2, 0.2, 0.2, 0.2], dtype=torch.float64).log()


def sampled_estimates(name: str) -> torch.Tensor:
    """The estimates at SAMPLES tokens drawn from the policy, as GRPO draws completion tokens (seeded)."""
    tokens = torch.multinomial(POLICY.exp(), SAMPLES, replacement=True, generator=torch.Generator().manual_seed(4))
    return estimate(name, POLICY[tokens], REFERENCE[tokens])


@pytest.mark.parametrize("name", NAMES)
def test_monte_carlo_mean_over_sampled_tokens_matches_the_exact_value(name):
    """Tokens drawn from pi, as GRPO draws completions: the estimates' mean is within 5 standard errors of the
    exact value (a 6e-7 chance of failing by bad luck; the draw is seeded). For unbiased estimators the exact
    value is the divergence itself; for k2 it is E_pi[k2]."""
    values = sampled_estimates(name)
    standard_error = values.std() / math.sqrt(SAMPLES)
    exact = ESTIMATORS[name].expectation(POLICY, REFERENCE)
    assert abs(values.mean() - exact) <= 5 * standard_error, (name, values.mean().item(), exact.item())
    assert standard_error < 0.02 * exact  # the test can tell a wrong estimator apart


def test_monte_carlo_tolerance_catches_the_wrong_divergence():
    """The same test would fail k3 (reverse KL) taken for the forward KL: the tolerance is tight enough."""
    values = sampled_estimates("k3")
    assert abs(values.mean() - forward_kl(POLICY, REFERENCE)) > 5 * values.std() / math.sqrt(SAMPLES)


def expected_loss_gradient(name: str, corrected: bool, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The mean over y ~ pi of the gradient of one token's loss term, exactly: sum_y pi(y) grad(term(y)).

    With the correction the term is ``f * exp(log pi - stop_gradient(log pi))`` (TRL's importance ratio on-policy).
    """
    logits = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(logits, dim=-1)
    term = estimate(name, logp, reference)
    if corrected:
        term = term * torch.exp(logp - logp.detach())
    (logp.exp().detach() * term).sum().backward()
    return logits.grad


def divergence_gradient(divergence, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    logits = logits.clone().requires_grad_(True)
    divergence(torch.log_softmax(logits, dim=-1), reference).sum().backward()
    return logits.grad


@pytest.mark.parametrize("name", NAMES)
def test_loss_gradient_with_the_importance_correction_is_the_gradient_of_the_divergence(name):
    """With TRL's use_bias_correction_kl (the default), every estimator in the loss has, in expectation, the gradient
    of what it estimates: the divergence itself for the unbiased ones, E_pi[k2] for k2."""
    policy, reference = distributions(vocab=7, rows=4, seed=5)
    logits = policy + 0.3  # any logits of the policy
    expected = expected_loss_gradient(name, True, logits, reference)
    torch.testing.assert_close(expected, divergence_gradient(ESTIMATORS[name].expectation, logits, reference))
    assert expected.abs().max() > 1e-3


@pytest.mark.parametrize(
    ("name", "gradient_of"),
    [("k1", None), ("k2", reverse_kl), ("k3", forward_kl)],
    ids=["k1-zero", "k2-reverse-kl", "k3-forward-kl"],
)
def test_loss_gradient_without_the_correction(name, gradient_of):
    """use_bias_correction_kl: false keeps the plain gradient: zero for k1, the reverse KL's for k2, and the
    forward KL's for k3 (why TRL added the correction)."""
    policy, reference = distributions(vocab=7, rows=4, seed=6)
    expected = expected_loss_gradient(name, False, policy, reference)
    if gradient_of is None:
        torch.testing.assert_close(expected, torch.zeros_like(expected))
    else:
        torch.testing.assert_close(expected, divergence_gradient(gradient_of, policy, reference))


@pytest.mark.parametrize("name", NAMES)
def test_estimates_and_gradients_stay_finite_at_extreme_ratios(name):
    logp = torch.tensor([-30.0, -1.0, -0.01, -20.0, -1e-6], requires_grad=True)
    ref_logp = torch.tensor([-0.01, -1.0, -30.0, -20.0, -25.0])
    values = estimate(name, logp, ref_logp)
    values.sum().backward()
    assert torch.isfinite(values).all() and torch.isfinite(logp.grad).all()
    if name != "k1":  # k1 is the only estimator that goes negative
        assert (values >= 0).all()
    assert values[1] == 0 and values[3] == 0  # equal log-probabilities: no divergence


def test_recipe_divergence_settings_are_checked(recipe_dict):
    recipe_dict["grpo"]["divergence"] = "js"
    with pytest.raises(RecipeError, match="js does nothing while grpo.trainer.beta, its coefficient, is 0"):
        validate_recipe(recipe_dict)
    recipe_dict["grpo"]["trainer"]["beta"] = 0.04
    assert validate_recipe(recipe_dict).grpo.describe_divergence() == {"name": "js", "in": "loss", "beta": 0.04}
    recipe_dict["grpo"]["divergence"] = {"name": "low_var_kl", "in": "rewards"}
    with pytest.raises(RecipeError) as caught:
        validate_recipe(recipe_dict)
    assert "'low_var_kl' is called k3 here" in str(caught.value)
    assert "grpo.divergence.in: input should be 'loss' or 'reward'" in str(caught.value)
    del recipe_dict["grpo"]["divergence"]
    assert validate_recipe(recipe_dict).grpo.describe_divergence() == {"name": "k3", "in": "loss", "beta": 0.04}


def test_validate_explains_which_divergence_trains_and_why(recipe_dict):
    from recipe_cli.plan import explain_divergence

    assert explain_divergence(validate_recipe(recipe_dict).grpo).startswith("none (trainer.beta 0: no reference model")
    recipe_dict["grpo"]["trainer"]["beta"] = 0.04
    text = explain_divergence(validate_recipe(recipe_dict).grpo)
    assert text.startswith("k3 (") and "x beta 0.04, in each token's loss; TRL's default with beta > 0" in text
    recipe_dict["grpo"]["divergence"] = {"name": "k1", "in": "reward"}
    text = explain_divergence(validate_recipe(recipe_dict).grpo)
    assert text.startswith("k1 (") and text.endswith("x beta 0.04, in each completion's reward, before advantages")


# --- the trainer, on the tiny model ---


@pytest.fixture
def grpo_trainer(recipe_dict):
    """Build a DivergenceGRPOTrainer as `recipe grpo` does (no SFT stage: from the tiny base model)."""
    from datasets import Dataset
    from trl import GRPOConfig

    from recipe_cli.data import grpo_prompts
    from recipe_cli.divergence import DivergenceGRPOTrainer
    from recipe_cli.grpo import reward_functions
    from recipe_cli.models import load_causal_lm, load_tokenizer, lora_config
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model, trainer_config

    def build(divergence=None, lora: bool = False, trainer_class=DivergenceGRPOTrainer, **settings):
        data = copy.deepcopy(recipe_dict)
        del data["sft"]
        data["grpo"]["trainer"].update(beta=0.04, **settings)
        if divergence is not None:
            data["grpo"]["divergence"] = divergence
        if lora:
            data["model"]["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0}
        recipe = validate_recipe(data)
        base = prepare_base_model(recipe, RunFolder(recipe))
        tokenizer = load_tokenizer(base, recipe.model)
        weights = [reward.weight for reward in recipe.grpo.rewards]
        trainer = trainer_class(
            divergence=recipe.grpo.penalty,
            model=load_causal_lm(base, recipe.model),
            reward_funcs=reward_functions(recipe, tokenizer),
            args=trainer_config(GRPOConfig, recipe, "grpo", extra={"reward_weights": weights}),
            train_dataset=Dataset.from_list(grpo_prompts(recipe, tokenizer)),
            processing_class=tokenizer,
            peft_config=lora_config(recipe.model.lora) if lora else None,
        )
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 3  # set by the training loop (micro-batches), read by the loss
        return trainer

    return build


def generation_batch(trainer) -> list[dict]:
    """Two prompts, each repeated num_generations times: one generation batch, as TRL's sampler makes it."""
    rows = [trainer.train_dataset[i] for i in range(2)]
    return [row for row in rows for _ in range(trainer.num_generations)]


def perturb(model, scale: float = 0.05, seed: int = 0) -> None:
    """Move the policy's trainable weights away from the reference's (the reference is not touched)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


@pytest.mark.slow
def test_k3_in_the_loss_equals_trl_builtin_loss(grpo_trainer):
    """For every loss_type, with and without TRL's importance correction, on- and off-policy, token- and
    sequence-level ratios: our loss (TRL's with beta 0, plus our k3 term) is TRL's own loss with beta * k3."""
    from trl import GRPOTrainer

    trainer = grpo_trainer()  # no divergence named, beta 0.04: k3 in the loss, TRL's default
    assert trainer.divergence.name == "k3" and trainer.divergence.in_ == "loss"
    inputs = trainer._generate_and_score_completions(generation_batch(trainer))
    generator = torch.Generator().manual_seed(1)
    shape = inputs["ref_per_token_logps"].shape
    inputs["ref_per_token_logps"] = inputs["ref_per_token_logps"] + 0.3 * torch.randn(shape, generator=generator)
    inputs["advantages"] = torch.randn(shape[0], generator=generator)
    off_policy = {**inputs, "old_per_token_logps": inputs["ref_per_token_logps"] - 0.1}
    model = trainer.model
    compared = 0
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"):
        for corrected in (True, False):
            for level in ("token", "sequence"):
                for batch in (inputs, off_policy):
                    trainer.loss_type, trainer.importance_sampling_level = loss_type, level
                    trainer.args.use_bias_correction_kl = corrected
                    ours = trainer._compute_loss(model, batch)
                    trl = GRPOTrainer._compute_loss(trainer, model, batch)
                    assert abs(ours.item() - trl.item()) <= 1e-6 * abs(trl.item()), (loss_type, corrected, level)
                    compared += 1
    assert compared == 64

    trainer.loss_type, trainer.importance_sampling_level, trainer.args.use_bias_correction_kl = "dapo", "token", True
    ours_grad = torch.autograd.grad(trainer._compute_loss(model, inputs), list(model.parameters()))
    trl_grad = torch.autograd.grad(GRPOTrainer._compute_loss(trainer, model, inputs), list(model.parameters()))
    for mine, theirs in zip(ours_grad, trl_grad, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
def test_every_divergence_in_the_loss_has_finite_nonzero_gradients(grpo_trainer):
    """With zero advantages the policy term has no gradient: what remains is the divergence's, and it must move."""
    trainer = grpo_trainer(divergence="k1")
    inputs = trainer._generate_and_score_completions(generation_batch(trainer))
    inputs["advantages"] = torch.zeros_like(inputs["advantages"])
    generator = torch.Generator().manual_seed(2)
    shape = inputs["ref_per_token_logps"].shape
    inputs["ref_per_token_logps"] = inputs["ref_per_token_logps"] + 0.3 * torch.randn(shape, generator=generator)
    parameters = [p for p in trainer.model.parameters() if p.requires_grad]
    for name in NAMES:
        trainer.divergence = trainer.divergence.model_copy(update={"name": name})
        gradients = torch.autograd.grad(trainer._compute_loss(trainer.model, inputs), parameters)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in gradients))
        assert torch.isfinite(norm) and norm > 1e-6, name
        assert trainer._metrics["train"][f"divergence/{name}"], name


def sequence_penalties(trainer, output) -> torch.Tensor:
    """Each completion's summed k1 from an independent forward pass of the policy and TRL's reference log-probs."""
    from trl import GRPOTrainer

    ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    with torch.no_grad():
        logps, _, _ = GRPOTrainer._get_per_token_logps_and_entropies(
            trainer, trainer.model, ids, mask, output["completion_ids"].size(1)
        )
    return ((logps - output["ref_per_token_logps"]) * output["completion_mask"]).sum(-1)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full-weights", "lora"])
@pytest.mark.parametrize("num_iterations", [1, 2], ids=["policy-scored-again", "trl-old-logps"])
def test_reward_placement_subtracts_beta_times_the_sequence_divergence_before_advantages(
    grpo_trainer, lora, num_iterations
):
    trainer = grpo_trainer(divergence={"name": "k1", "in": "reward"}, lora=lora, num_iterations=num_iterations)
    assert trainer.reward_func_names[-1] == "divergence_k1"
    assert trainer.reward_weights[-1].item() == pytest.approx(-0.04)
    perturb(trainer.model)  # the reference (a copy on disk, or the adapter disabled) stays where it was
    output = trainer._generate_and_score_completions(generation_batch(trainer))
    if num_iterations == 2:
        assert "old_per_token_logps" in output  # TRL scored the policy itself; that pass was reused

    penalties = sequence_penalties(trainer, output)
    assert penalties.abs().max() > 1e-3  # the policy really moved away from the reference
    logged = torch.tensor(list(trainer._logs["rewards"]["divergence_k1"]), dtype=penalties.dtype)
    torch.testing.assert_close(logged, penalties, rtol=1e-4, atol=1e-5)

    names, weights = trainer.reward_func_names[:-1], trainer.reward_weights[:-1].tolist()
    task = sum(w * torch.tensor(list(trainer._logs["rewards"][n])) for n, w in zip(names, weights, strict=True))
    rewards = (task - 0.04 * penalties).view(-1, trainer.num_generations)
    advantages = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)
    torch.testing.assert_close(output["advantages"], advantages.flatten(), rtol=1e-4, atol=1e-4)
    assert trainer._metrics["train"]["divergence/k1"][-1] > 0


@pytest.mark.slow
def test_the_policy_pass_of_a_divergence_in_the_reward_is_timed_as_a_forward_pass(grpo_trainer, monkeypatch):
    """Each forward pass takes 0.2 s more: the reference's and the policy's extra one are log-probs, not rewards."""
    import time

    from trl import GRPOTrainer

    from recipe_cli.divergence import DivergenceGRPOTrainer
    from recipe_cli.step_time import with_step_times

    forward = GRPOTrainer._get_per_token_logps_and_entropies

    def slow_forward(*args, **kwargs):
        time.sleep(0.2)
        return forward(*args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", slow_forward)
    trainer = grpo_trainer(
        divergence={"name": "k1", "in": "reward"}, trainer_class=with_step_times(DivergenceGRPOTrainer)
    )
    trainer._generate_and_score_completions(generation_batch(trainer))
    phases = trainer._step_phases
    assert phases["logprobs"] >= 0.4  # two passes: the reference's, then the policy's for the penalty
    assert phases["rewards"] < 0.2
    assert trainer._metrics["train"]["divergence/k1"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("divergence", "lora"),
    [({"name": "js"}, False), ({"name": "js"}, True), ({"name": "k1", "in": "reward"}, True)],
    ids=["js-in-loss-full-weights", "js-in-loss-lora", "k1-in-reward-lora"],
)
def test_grpo_trains_with_a_divergence_and_records_it(recipe_dict, divergence, lora, tmp_path):
    from recipe_cli.card import render_model_card
    from recipe_cli.console import ConsoleReporter
    from recipe_cli.evaluate import evaluate_model
    from recipe_cli.pipeline import train_one
    from recipe_cli.resume import plan_start
    from recipe_cli.runs import RunFolder
    from tests.test_pipeline import changed, weights

    del recipe_dict["sft"]
    recipe_dict["grpo"]["divergence"] = divergence
    recipe_dict["grpo"]["trainer"].update(beta=0.04, logging_steps=1)
    if lora:
        recipe_dict["model"]["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0}
        recipe_dict["grpo"]["trainer"]["learning_rate"] = 1.0e-2
    recipe = validate_recipe(recipe_dict)
    start = plan_start(RunFolder(recipe), "grpo", resume=False, overwrite=False, force=False)
    output = train_one(recipe, start, ConsoleReporter())
    run_dir = tmp_path / "runs" / "tiny"
    if lora:
        assert (output / "adapter_config.json").is_file()
    else:
        assert changed(weights(run_dir / "base"), weights(output)), "GRPO left the weights as they were"

    name = divergence["name"]
    logs = [row for row in json.loads((output / "trainer_state.json").read_text())["log_history"] if "loss" in row]
    assert len(logs) == 2 and all(math.isfinite(row[f"divergence/{name}"]) for row in logs)
    assert all(math.isfinite(row["grad_norm"]) and row["grad_norm"] > 0 for row in logs)
    record = {"name": name, "in": divergence.get("in", "loss"), "beta": 0.04}
    assert json.loads((run_dir / "run.json").read_text())["stages"]["grpo"]["divergence"] == record

    summary = evaluate_model(recipe, str(output), "grpo", limit=2)
    assert summary["divergence"] == record
    assert json.loads((run_dir / "eval" / "grpo.json").read_text())["divergence"] == record
    card = render_model_card(recipe, "grpo", str(run_dir / "base"), lora=lora)
    assert f"- GRPO divergence to the reference model: `{name}`" in card
    assert f"divergence/{name}" in card  # its curve


def test_readme_lists_every_divergence():
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    for name in DIVERGENCES:
        assert f"| `{name}` |" in readme, f"README has no row for the divergence {name}"


@pytest.mark.slow
def test_the_ablation_script_compares_variants_and_reuses_finished_ones(
    recipe_dict, write_recipe, tmp_path, capsys, load_script
):
    script = load_script("ablate_divergence")
    recipe_dict["grpo"]["trainer"]["logging_steps"] = 1
    arguments = [
        str(write_recipe(recipe_dict)),
        "--variants",
        "none,k1:reward",
        "--grpo-steps",
        "2",
        "--eval-limit",
        "4",
    ]
    assert script.main(arguments) == 0
    printed = capsys.readouterr().out
    assert "| k1-reward | 0.04 |" in printed and "| none | 0 |" in printed
    result = json.loads((tmp_path / "runs" / "tiny-ablation" / "ablation.json").read_text())
    rows = {row["variant"]: row for row in result["variants"]}
    assert rows["none"]["divergence"]["name"] == "none" and rows["none"]["logged_divergence"] is None
    assert rows["k1-reward"]["divergence"] == {"name": "k1", "in": "reward", "beta": 0.04}
    assert math.isfinite(rows["k1-reward"]["logged_divergence"])
    for row in rows.values():
        assert row["n"] == 4 and [step for step, _ in row["reward_curve"]] == [1, 2]
        assert row["drift_from_sft"]["reverse_kl"] > 0  # GRPO moved the policy away from the SFT model
        assert set(row["drift_from_sft"]) == {"reverse_kl", "forward_kl", "js", "tv"}

    assert script.main(arguments) == 0  # again: the SFT start and both variants are reused, the numbers repeat
    again = json.loads((tmp_path / "runs" / "tiny-ablation" / "ablation.json").read_text())
    assert [row["accuracy"] for row in again["variants"]] == [row["accuracy"] for row in result["variants"]]
    assert [row["checkpoint"] for row in again["variants"]] == [row["checkpoint"] for row in result["variants"]]
    assert sum(": reused the run" in note for note in again["notes"]) == 2 and "SFT reused" in again["notes"][-1]
