"""Evaluation: pass@k and maj@k, the eval schema, backend choice, summary files and one-line errors."""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import validate_recipe
from recipe_cli.errors import RecipeError
from recipe_cli.generation import Generation, choose_backend
from recipe_cli.metrics import answer_key, majority_answer, majority_correct, pass_at_k
from recipe_cli.runs import settings_hash
from recipe_cli.synthetic import generate_problems

from .conftest import GSM8K_DIR, TINY_RECIPE

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (1, 0, 1, 0.0),
        (1, 1, 1, 1.0),
        (10, 3, 1, 0.3),  # pass@1 is the share of correct samples
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (10, 3, 10, 1.0),
        (4, 2, 2, 1 - 1 / 6),  # 1 - C(2,2)/C(4,2)
        (200, 10, 100, 1 - math.comb(190, 100) / math.comb(200, 100)),
        (8, 0, 8, 0.0),
    ],
)
def test_pass_at_k_known_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 2, 2), (6, 1, 3), (6, 4, 3), (7, 3, 4)])
def test_pass_at_k_equals_counting_every_draw(n, c, k):
    """The estimator is the exact share of k-subsets of the n samples that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    draws = list(itertools.combinations(samples, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(d) for d in draws) / len(draws))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


@pytest.mark.parametrize(
    ("answers", "majority"),
    [
        (["3", "4", "4"], "4"),
        (["4", "3", "3", "4"], "4"),  # tie 2-2: the answer voted for first wins
        (["3", "4", "3", "4"], "3"),
        ([None, None, "7", "8"], "7"),  # unanswered samples do not vote; tie 1-1 goes to the first vote
        ([None, "8", None, "7", "7"], "7"),  # two votes beat one, however many samples gave no answer
        (["1,000", "7", "1000", "1000.0"], "1,000"),  # votes are counted by value
        (["$5", "5 apples", "6", "6"], "$5"),  # 2-2 by value: the first spelling stands for its group
        ([None, None], None),
        ([], None),
    ],
)
def test_majority_vote_and_its_tie_rule(answers, majority):
    assert majority_answer(answers) == majority


@pytest.mark.parametrize(
    ("answers", "gold", "correct"),
    [
        (["12", "12", "13"], "12", True),
        (["13", "12"], "12", False),  # a tie the wrong answer was voted into first counts as wrong
        (["12", "13"], "12", True),
        (["1,2", "12.0", "12"], "12", True),  # "1,2" is 12 as well: commas are thousands separators
        ([None, None, "12"], "12", True),
        ([None, None], "12", False),
        (["13", "x = 12", "12", "13", "12"], "12", True),  # "x = 12" reads as 12, as the checker reads it
        (["x+1", "1+x", "x + 2"], "x+1", True),  # symbolic answers vote by spelling
        # spellings that differ only in form vote together (they split the vote and lost the tie before)
        (["(3,4)", "(1,2)", "(1, 2)"], "(1,2)", True),
        (["x + 2", "x+1", "x + 1"], "x+1", True),
        (["3", "\\frac12", "\\frac{1}{2}"], "\\frac{1}{2}", True),
        (["B", "C", "\\text{(C)}", "(C)"], "C", True),
        (["\\{2\\}", "\\{1,3\\}", "\\{1, 3\\}"], "\\{1,3\\}", True),
        (["\\sqrt{2}", "2\\sqrt{3}", "2 \\sqrt{3}"], "\\sqrt{12}", True),
    ],
)
def test_majority_correct(answers, gold, correct):
    assert majority_correct(answers, gold) is correct


def test_answer_key_compares_numbers_by_value():
    assert answer_key("1,000") == answer_key("1000") == answer_key("1000.00")
    assert answer_key("1/2") == answer_key("0.5")
    assert answer_key(r"\sqrt{2}") != answer_key("2")


def eval_recipe(**eval_settings) -> dict:
    data = copy.deepcopy(TINY_RECIPE)
    data["eval"].update(eval_settings)
    return data


def test_eval_schema_defaults_are_greedy():
    settings = validate_recipe(eval_recipe()).eval
    assert (settings.num_samples, settings.pass_k, settings.backend, settings.batch_size) == (1, [1], "auto", 128)


def test_eval_schema_fills_and_sorts_k():
    assert validate_recipe(eval_recipe(num_samples=8)).eval.pass_k == [1, 2, 4, 8]
    assert validate_recipe(eval_recipe(num_samples=6, pass_k=[6, 1, 1])).eval.pass_k == [1, 6]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"num_samples": 4, "pass_k": [1, 8]}, "eval: pass_k: k=8 is larger than num_samples=4; set num_samples to"),
        ({"pass_k": [4]}, "k=4 is larger than num_samples=1"),
        ({"pass_k": [0]}, "k=0 is not a sample count"),
        ({"temperature": 0.0}, "eval.temperature: input should be greater than 0"),
        ({"top_p": 1.5}, "eval.top_p: input should be less than or equal to 1"),
        ({"backend": "tgi"}, "eval.backend: input should be 'auto', 'transformers' or 'vllm'"),
        ({"num_sample": 4}, "eval.num_sample: unknown key; did you mean 'num_samples'?"),
    ],
)
def test_eval_schema_mistakes(settings, expected):
    with pytest.raises(RecipeError) as caught:
        validate_recipe(eval_recipe(**settings))
    assert expected.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    ("requested", "vllm", "cuda", "chosen"),
    [
        ("auto", True, True, "vllm"),
        ("auto", True, False, "transformers"),
        ("auto", False, True, "transformers"),
        ("transformers", True, True, "transformers"),
        ("vllm", True, True, "vllm"),
    ],
)
def test_backend_choice(requested, vllm, cuda, chosen):
    assert choose_backend(requested, vllm_available=vllm, cuda=cuda) == chosen


def test_vllm_requested_but_missing_or_without_gpu():
    with pytest.raises(RecipeError, match=r"vllm is requested but not installed; `pip install vllm`"):
        choose_backend("vllm", vllm_available=False, cuda=True)
    with pytest.raises(RecipeError, match="vllm needs a CUDA GPU"):
        choose_backend("vllm", vllm_available=True, cuda=False)


def test_sampled_metrics_from_scored_completions():
    from recipe_cli.evaluate import _add_samples

    right, wrong = "<think>x</think><answer>12</answer>", "<think>x</think><answer>13</answer>"
    samples = [{"gold": "12"}, {"gold": "5"}]
    out = Generation(
        completions=[[wrong, right, right, "no answer"], ["5", "6", "6", "7"]],
        truncated=[[False, False, False, True], [False] * 4],
        tokens=[[10, 10, 10, 40], [2, 2, 2, 2]],
    )
    sampled = _add_samples(samples, out, ks=[1, 2, 4])
    assert sampled["mean_accuracy"] == pytest.approx(3 / 8)
    assert sampled["pass@k"]["1"] == pytest.approx(3 / 8)  # pass@1 is the mean accuracy of the samples
    assert sampled["pass@k"]["2"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6)) / 2)
    assert sampled["pass@k"]["4"] == 1.0
    # maj@1: first samples 13 (wrong) and 5 (right); maj@2: 13-vs-12 and 5-vs-6 ties go to the first vote
    assert sampled["maj@k"] == {"1": 0.5, "2": 0.5, "4": 0.5}  # maj@4: 12 wins (2 votes), 6 beats 5
    assert samples[0]["majority"] == {"answer": "12", "correct": True}
    assert samples[1]["majority"] == {"answer": "6", "correct": False}
    assert samples[0]["num_correct"] == 2 and len(samples[0]["samples"]) == 4
    assert sampled["truncation_rate"] == pytest.approx(1 / 8)
    assert sampled["format_rate"] == pytest.approx(3 / 8)
    assert sampled["mean_completion_tokens"] == pytest.approx(78 / 8)


@pytest.mark.parametrize(
    ("completion", "truncated", "strict", "flexible"),
    [
        ("<think>x</think><answer>18</answer>", False, True, True),
        ("<think>x</think><answer>18</answer>", True, False, True),  # cut off at max_new_tokens
        ("<think>\nShe has 16 - 3 - 4 = 9 eggs left, and 9 * 2 = 18", True, False, True),
        ("The answer is 18.", False, False, True),  # not in the format the recipe asks for
        ("<think>x</think><answer>17</answer>", False, False, False),
    ],
)
@pytest.mark.parametrize("mode", ["strict", "flexible"])
def test_each_completion_is_scored_strict_and_flexible(completion, truncated, strict, flexible, mode):
    from recipe_cli.evaluate import _greedy_record

    out = Generation(completions=[[completion]], truncated=[[truncated]], tokens=[[9]])
    record = _greedy_record("prompt", "18", out, 0, mode)
    assert (record["correct_strict"], record["correct_flexible"]) == (strict, flexible)
    assert record["correct"] == (strict if mode == "strict" else flexible)


@pytest.mark.parametrize(
    "completion",
    [
        "<think>9 * 2 = 18</think> So Janet makes 18 dollars.",
        "<think>maybe \\boxed{20}</think> The total is 18.",  # the answer after the thought, not inside it
        "<think>maybe \\boxed{18}</think> The total is 20.",
        "<think>\n9 * 2 = 18",  # the thought never ended: nothing answered
        "<think>so <answer>18</answer>",
        "<think>x</think><answer>18</answer>",
    ],
)
@pytest.mark.parametrize("mode", ["strict", "flexible"])
def test_eval_reads_the_answer_where_the_accuracy_reward_reads_it(recipe_dict, completion, mode):
    from recipe_cli.evaluate import _add_samples, _greedy_record, accuracy_mode, accuracy_params, answer_reading
    from recipe_cli.rewards import get_reward

    recipe_dict["grpo"]["rewards"][0] = {"name": "accuracy", "params": {"mode": mode, "answer_after": "</think>"}}
    recipe = validate_recipe(recipe_dict)
    paid = get_reward("accuracy", **accuracy_params(recipe))([completion], answer=["18"])[0]
    out = Generation(completions=[[completion]], truncated=[[False]], tokens=[[9]])
    record = _greedy_record("prompt", "18", out, 0, accuracy_mode(recipe), False, answer_reading(recipe))
    assert float(record["correct"]) == paid
    sampled = _add_samples([{"gold": "18"}], out, [1], accuracy_mode(recipe), False, answer_reading(recipe))
    assert sampled["pass@k"]["1"] == sampled["maj@k"]["1"] == paid


@pytest.mark.parametrize("tokens", [8, 7])
def test_strict_eval_cuts_off_where_the_strict_reward_does(tokens):
    """A completion whose end-of-turn token was the last of its budget reads, to the reward, as one cut off there."""
    from recipe_cli.evaluate import _add_samples, _greedy_record
    from recipe_cli.rewards import get_reward

    completion = "<think>x</think><answer>18</answer>"
    paid = get_reward("accuracy", mode="strict", max_completion_len=8)(
        [completion], answer=["18"], completion_ids=[list(range(tokens))]
    )[0]
    out = Generation(completions=[[completion]], truncated=[[False]], tokens=[[tokens]])  # it stopped on its own
    record = _greedy_record("prompt", "18", out, 0, "strict", budget=8)
    assert float(record["correct"]) == float(record["correct_strict"]) == paid
    assert record["truncated"] is False  # the truncation rate still counts completions that never stopped
    sampled = _add_samples([{"gold": "18"}], out, [1], "strict", budget=8)
    assert sampled["pass@k"]["1"] == sampled["maj@k"]["1"] == paid


def test_a_cut_off_sample_does_not_vote_in_strict_mode():
    from recipe_cli.evaluate import _add_samples

    cut, done = "<answer>13</answer>", "<answer>12</answer>"
    out = Generation(completions=[[cut, cut, done]], truncated=[[True, True, False]], tokens=[[8, 8, 4]])
    strict = _add_samples([{"gold": "12"}], out, [3], mode="strict")
    flexible = _add_samples([{"gold": "12"}], out, [3])
    assert strict["maj@k"] == {"3": 1.0} and flexible["maj@k"] == {"3": 0.0}
    assert strict["mean_accuracy"] == strict["mean_accuracy_strict"] == pytest.approx(1 / 3)
    assert strict["mean_accuracy_flexible"] == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    """The tests' tiny model (untrained), built once for this module."""
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model

    data = copy.deepcopy(TINY_RECIPE)
    data["runs_dir"] = str(tmp_path_factory.mktemp("base_runs"))
    recipe = validate_recipe(data)
    return prepare_base_model(recipe, RunFolder(recipe))


def test_end_of_turn_token_stops_generation(tiny_checkpoint):
    from recipe_cli.chat import end_of_turn_id
    from recipe_cli.generation import stop_token_ids
    from recipe_cli.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_checkpoint, validate_recipe(copy.deepcopy(TINY_RECIPE)).model)
    assert end_of_turn_id(tokenizer) == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tokenizer)


@pytest.mark.parametrize("architecture", ["llama", "gpt2", "mpt"])
def test_shared_prefix_batches_write_what_one_prompt_at_a_time_writes(architecture, tiny_checkpoint):
    """The shared-prefix path pads between prefix and prompt: only models with mask-derived positions take it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from recipe_cli.generation import _prefix_cache, generate_greedy
    from recipe_cli.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_checkpoint, validate_recipe(copy.deepcopy(TINY_RECIPE)).model)
    sizes = {
        "llama": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
        "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 256},
        "mpt": {"d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 256},
    }[architecture]
    config = AutoConfig.for_model(architecture, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, **sizes)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": "Solve it."}, {"role": "user", "content": question}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for question in ["2 + 3?", "What is 12 times 4, minus 7?", "9 - 1?", "Add 40 and 2, then halve it."]
    ]
    batched, _ = generate_greedy(model, tokenizer, prompts, max_new_tokens=8, batch_size=4)
    single, _ = generate_greedy(model, tokenizer, prompts, max_new_tokens=8, batch_size=1)
    assert batched == single
    takes_prefix_path = _prefix_cache(model, tokenizer(prompts[0])["input_ids"][:5], 2) is not None
    assert takes_prefix_path == (architecture != "mpt")  # MPT's ALiBi counts positions by index


def test_summary_records_exactly_what_was_measured(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    recipe_dict["eval"].update(num_samples=4, temperature=0.8, top_p=0.9, max_new_tokens=8, batch_size=6)
    path = write_recipe(recipe_dict)
    result = invoke("eval", path, "--model", tiny_checkpoint, "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "pass@4" in result.output and "maj@4" in result.output
    folder = tmp_path / "runs" / "tiny" / "eval"
    summary = json.loads((folder / "tiny-base-limit3.json").read_text())  # another run's base, 3 problems
    assert summary["dataset"] == "arithmetic" and summary["split"] == "test"
    assert summary["dataset_settings"]["max_samples"] == 8 and summary["limit"] == 3 and summary["n"] == 3
    assert summary["seed"] == 7 and summary["backend"] == "transformers"
    questions = [[row["question"], row["answer"]] for row in generate_problems("test", 3, seed=7)]
    assert summary["problems"] == settings_hash({"problems": questions})  # what the report compares runs by
    assert summary["decoding"]["sampling"] == {
        "num_samples": 4,
        "temperature": 0.8,
        "top_p": 0.9,
        "top_k": None,
        "seed": 7,
        "max_new_tokens": 8,
        "batch_size": 6,
    }
    assert summary["decoding"]["greedy"] == {"max_new_tokens": 8, "batch_size": 6}
    assert summary["answer_checker"] == "recipe_cli.answers.score_completion"
    assert all(summary["versions"][name] for name in ("torch", "transformers", "trl", "peft", "recipe-cli"))
    assert set(summary["sampled"]["pass@k"]) == set(summary["sampled"]["maj@k"]) == {"1", "2", "4"}
    for key in ("accuracy", "format_rate", "truncation_rate", "mean_completion_tokens", "samples_per_second"):
        assert summary[key] is not None
    assert summary["truncation_rate"] == 1.0 and summary["mean_completion_tokens"] == 8  # untrained: never stops

    lines = [json.loads(line) for line in (folder / "tiny-base-limit3.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    assert {"prompt", "completion", "extracted", "gold", "correct", "tokens", "samples", "majority"} <= lines[0].keys()
    assert all(len(line["samples"]) == 4 for line in lines)
    assert summary["accuracy"] == sum(line["correct"] for line in lines) / 3
    assert summary["accuracy_mode"] == "flexible"  # the tiny recipe's accuracy reward has no mode
    assert summary["accuracy"] == summary["accuracy_flexible"]
    assert summary["accuracy_strict"] == sum(line["correct_strict"] for line in lines) / 3

    # seeded: the same recipe samples the same completions
    assert invoke("eval", path, "--model", tiny_checkpoint, "--limit", "3").exit_code == 0
    again = [json.loads(line) for line in (folder / "tiny-base-limit3.jsonl").read_text().splitlines()]
    assert [line["samples"] for line in again] == [line["samples"] for line in lines]
    assert len({s["completion"] for line in lines for s in line["samples"]}) > 3  # and they are samples


def test_eval_headline_is_strict_when_the_recipe_trains_with_strict(
    recipe_dict, write_recipe, tmp_path, tiny_checkpoint
):
    recipe_dict["grpo"]["rewards"][0] = {"name": "accuracy", "params": {"mode": "strict"}}
    recipe_dict["eval"]["max_new_tokens"] = 8
    result = invoke("eval", write_recipe(recipe_dict), "--model", tiny_checkpoint, "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "(greedy, strict)" in result.output and "flexible" in result.output  # the other mode's column
    folder = tmp_path / "runs" / "tiny" / "eval"
    summary = json.loads((folder / "tiny-base-limit2.json").read_text())
    assert summary["accuracy_mode"] == "strict" and summary["accuracy"] == summary["accuracy_strict"] == 0.0
    lines = [json.loads(line) for line in (folder / "tiny-base-limit2.jsonl").read_text().splitlines()]
    assert all(line["truncated"] and not line["correct_strict"] for line in lines)  # untrained: never stops
    assert summary["accuracy_flexible"] == sum(line["correct_flexible"] for line in lines) / 2


def test_two_checkpoints_with_one_name_get_two_labels(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    import shutil

    copy_dir = tmp_path / "other" / "base"
    shutil.copytree(tiny_checkpoint, copy_dir)
    result = invoke("eval", write_recipe(recipe_dict), "--model", tiny_checkpoint, "--model", copy_dir, "--limit", "2")
    assert result.exit_code == 0, result.output
    labels = sorted(p.name for p in (tmp_path / "runs" / "tiny" / "eval").glob("*.json"))
    assert labels == ["other-base-limit2.json", "tiny-base-limit2.json"]


def test_eval_results_never_overwrite_each_other(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    """A --limit eval, another run's folder, and a folder under a label already taken each keep their results."""
    import shutil

    path = write_recipe(recipe_dict)
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_checkpoint, run / "base")  # this run's own base model
    assert invoke("eval", path).exit_code == 0
    full = (run / "eval" / "base.json").read_text()
    assert invoke("eval", path, "--limit", "2").exit_code == 0
    assert (run / "eval" / "base.json").read_text() == full
    assert json.loads((run / "eval" / "base-limit2.json").read_text())["n"] == 2
    other = tmp_path / "other" / "sft"
    shutil.copytree(tiny_checkpoint, other)
    assert invoke("eval", path, "--model", other, "--limit", "1").exit_code == 0
    assert (run / "eval" / "other-sft-limit1.json").is_file() and not (run / "eval" / "sft.json").exists()
    assert invoke("eval", path, "--model", run / "base", "--limit", "2").exit_code == 0  # the run's own: its label
    second = tmp_path / "elsewhere" / "other" / "sft"  # another folder that would take the label other-sft
    shutil.copytree(tiny_checkpoint, second)
    result = invoke("eval", path, "--model", second, "--limit", "1")
    assert result.exit_code == 2 and "pass --overwrite to replace it" in result.output
    assert invoke("eval", path, "--model", second, "--limit", "1", "--overwrite").exit_code == 0


def _no_eval_written(tmp_path) -> bool:
    return not (tmp_path / "runs" / "tiny" / "eval").exists()


def test_missing_model_path(recipe_dict, write_recipe, tmp_path):
    result = invoke("eval", write_recipe(recipe_dict), "--model", tmp_path / "no_such_checkpoint")
    assert result.exit_code == 2
    assert "is not a folder; give a saved checkpoint folder" in result.output
    assert "Traceback" not in result.output and _no_eval_written(tmp_path)


def test_folder_that_is_not_a_checkpoint(recipe_dict, write_recipe, tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("eval", write_recipe(recipe_dict), "--model", tmp_path / "empty")
    assert result.exit_code == 2
    assert "has no config.json or adapter_config.json" in result.output


def _broken_copy(checkpoint: str, target, keep: tuple[str, ...] | None = None, cut: bool = False):
    """A copy of ``checkpoint`` with only the files in ``keep``, or with its weights cut off half-way."""
    import shutil

    shutil.copytree(checkpoint, target)
    for path in target.iterdir():
        if keep is not None and path.name not in keep:
            path.unlink()
    if cut:
        weights = target / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return target


@pytest.mark.parametrize(
    ("keep", "cut", "expected"),
    [
        (None, True, "the weights file model.safetensors is "),
        (("config.json", "model.safetensors"), False, "holds no tokenizer (tokenizer.json"),
        (("config.json",), False, "holds neither weights (*.safetensors, *.bin) nor a tokenizer"),
    ],
    ids=["weights-cut-off", "no-tokenizer", "config-alone"],
)
def test_a_broken_model_folder_is_one_line(recipe_dict, write_recipe, tmp_path, tiny_checkpoint, keep, cut, expected):
    """--model gets the checks validate gives model.path, before any weights load."""
    folder = _broken_copy(tiny_checkpoint, tmp_path / "copied", keep, cut)
    result = invoke("eval", write_recipe(recipe_dict), "--model", folder)
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: --model '{folder}'") and expected in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_a_run_checkpoint_cut_off_after_validation_is_one_line(tmp_path, tiny_checkpoint):
    """Loading itself names the cut-off file (a run's own checkpoint is not checked before it loads)."""
    from recipe_cli.models import load_causal_lm, load_tokenizer

    settings = validate_recipe(copy.deepcopy(TINY_RECIPE)).model
    cut = _broken_copy(tiny_checkpoint, tmp_path / "cut", cut=True)
    with pytest.raises(RecipeError, match=r"cannot load the model '.*cut': the weights file model.safetensors is "):
        load_causal_lm(cut, settings)
    bare = _broken_copy(tiny_checkpoint, tmp_path / "bare", keep=("config.json", "model.safetensors"))
    with pytest.raises(RecipeError, match=r"bare' holds no tokenizer"):
        load_tokenizer(bare, settings)


def test_k_larger_than_num_samples_exits_2(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    result = invoke(
        "eval",
        write_recipe(recipe_dict),
        "--model",
        tiny_checkpoint,
        "--set",
        "eval.num_samples=2",
        "--set",
        "eval.pass_k=[4]",
    )
    assert result.exit_code == 2
    assert "k=4 is larger than num_samples=2" in result.output
    assert "Traceback" not in result.output and _no_eval_written(tmp_path)


def test_dataset_without_the_needed_columns(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    data = tmp_path / "problems.jsonl"
    data.write_text(json.dumps({"problem": "1+1?", "target": "2"}) + "\n")
    recipe_dict["eval"]["dataset"] = {"path": str(data), "split": "test"}
    result = invoke("eval", write_recipe(recipe_dict), "--model", tiny_checkpoint)
    assert result.exit_code == 2
    assert "has no column 'question' (for question)" in result.output and "columns: {question: ..." in result.output
    assert "Traceback" not in result.output and _no_eval_written(tmp_path)


def test_vllm_requested_but_missing_exits_2(recipe_dict, write_recipe, tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr("recipe_cli.generation.vllm_installed", lambda: False)
    result = invoke("eval", write_recipe(recipe_dict), "--model", tiny_checkpoint, "--set", "eval.backend=vllm")
    assert result.exit_code == 2
    assert "vllm is requested but not installed" in result.output
    assert "Traceback" not in result.output and _no_eval_written(tmp_path)


def test_lora_adapter_without_its_base(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    adapter = get_peft_model(base, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    folder = tmp_path / "adapter"
    adapter.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "deleted" / "base")
    (folder / "adapter_config.json").write_text(json.dumps(config))

    result = invoke("eval", write_recipe(recipe_dict), "--model", folder)
    assert result.exit_code == 2
    assert f"was trained on '{tmp_path / 'deleted' / 'base'}', which does not exist" in result.output
    assert "Traceback" not in result.output and _no_eval_written(tmp_path)


def test_lora_adapter_saved_without_a_tokenizer(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    """peft's save_pretrained writes the adapter alone: its base model's tokenizer is the one it was trained with
    (transformers cannot build one from the adapter folder and raised a conversion traceback)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    adapter = get_peft_model(base, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    folder = tmp_path / "adapter"
    adapter.save_pretrained(folder)

    assert invoke("validate", write_recipe({**recipe_dict, "model": {"path": str(folder)}})).exit_code == 0
    result = invoke("eval", write_recipe(recipe_dict), "--model", folder, "--limit", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads(next((tmp_path / "runs" / "tiny" / "eval").glob("*.json")).read_text())
    assert summary["n"] == 2


@pytest.mark.skipif(not (GSM8K_DIR / "test.jsonl").is_file(), reason="GSM8K is not next to the checkout")
def test_eval_on_the_gsm8k_test_split(recipe_dict, write_recipe, tmp_path, tiny_checkpoint):
    recipe_dict["eval"] = {
        "dataset": {"path": str(GSM8K_DIR / "test.jsonl"), "adapter": "gsm8k", "split": "test"},
        "max_new_tokens": 4,
    }
    result = invoke("eval", write_recipe(recipe_dict), "--model", tiny_checkpoint, "--limit", "3")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "runs" / "tiny" / "eval" / "tiny-base-limit3.jsonl").read_text().splitlines()
    assert [json.loads(line)["gold"] for line in lines] == ["18", "3", "70000"]  # the first three GSM8K test golds


def test_several_eval_sets_each_get_their_results_and_table(
    recipe_dict, write_recipe, tmp_path, tiny_checkpoint, monkeypatch
):
    import shutil

    from recipe_cli import generation

    engines = []  # each checkpoint is loaded once for every set, and let go after them
    real_load = generation.load_engine
    monkeypatch.setattr(generation, "load_engine", lambda *a: engines.append(real_load(*a)) or engines[-1])

    recipe_dict["eval"] = {
        "datasets": [
            {"name": "arith", "adapter": "arithmetic", "split": "test", "max_samples": 3},
            {"name": "small", "adapter": "arithmetic", "split": "test", "max_samples": 2},
        ],
        "max_new_tokens": 4,
    }
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_checkpoint, run / "base")
    result = invoke("eval", write_recipe(recipe_dict))
    assert result.exit_code == 0, result.output
    assert "Evaluation: arith" in result.output and "Evaluation: small" in result.output
    headline = json.loads((run / "eval" / "base.json").read_text())
    other = json.loads((run / "eval" / "base@small.json").read_text())
    assert (headline["n"], headline["eval_set"]) == (3, "arith") and (other["n"], other["eval_set"]) == (2, "small")
    assert len(engines) == 1 and engines[0].model is None
    recipe_dict["eval"]["datasets"].append({"name": "small", "adapter": "arithmetic", "split": "test"})
    result = invoke("validate", write_recipe(recipe_dict))
    assert result.exit_code == 2 and "two sets share a name" in result.output


def test_the_vllm_backend_generates_in_the_resolved_compute_dtype(recipe_dict, monkeypatch):
    """Checkpoints keep float32 master weights; vLLM's own "auto" would read that off their config."""
    import sys
    from types import ModuleType, SimpleNamespace

    from recipe_cli.generation import VLLMEngine
    from recipe_cli.precision import Machine
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_base_model

    built = {}
    vllm, lora = ModuleType("vllm"), ModuleType("vllm.lora.request")
    vllm.LLM = lambda **options: built.update(options) or SimpleNamespace()
    lora.LoRARequest = object
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora)
    monkeypatch.setattr(Machine, "here", classmethod(lambda cls: Machine(gpu=True)))
    recipe = validate_recipe(recipe_dict)
    assert recipe.model.dtype == "auto"
    engine = VLLMEngine(str(prepare_base_model(recipe, RunFolder(recipe))), recipe)
    assert built["dtype"] == engine.dtype == "bfloat16"


def test_an_eval_set_without_gold_answers_is_refused_where_it_loads(recipe_dict, tiny_checkpoint, monkeypatch):
    """A Hub dataset in TRL's formats is read only when the eval runs (validate reads local files)."""
    from recipe_cli.evaluate import evaluate_model

    rows = [{"question": "1+1?", "prompt": [{"role": "user", "content": "1+1?"}], "answer": "", "reasoning": None}]
    monkeypatch.setattr("recipe_cli.evaluate.load_examples", lambda dataset, seed: rows)
    loaded = []
    monkeypatch.setattr("recipe_cli.generation.load_engine", lambda *args: loaded.append(args))
    with pytest.raises(RecipeError, match="eval set .* has no gold answer, which every answer is scored against"):
        evaluate_model(validate_recipe(recipe_dict), tiny_checkpoint, "base")
    assert loaded == []  # refused before the model loads
