"""The data chain: adapters inferred from local files, duplicates, decontamination, mixtures, fraction, pass rate,
and ``recipe data`` writing what training receives."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from recipe_cli.cli import app
from recipe_cli.config import DatasetSettings, validate_recipe
from recipe_cli.data import load_examples, prepare_stage
from recipe_cli.data.chain import StepReport, filter_by_pass_rate
from recipe_cli.errors import RecipeError
from recipe_cli.tiny_model import build_tokenizer

from .conftest import GSM8K_DIR

runner = CliRunner()
HAS_GSM8K = (GSM8K_DIR / "train.jsonl").is_file() and (GSM8K_DIR / "test.jsonl").is_file()
OPENTHOUGHTS_RESPONSE = (
    "<|begin_of_thought|>\nthink\n<|end_of_thought|>\n<|begin_of_solution|>\n\\boxed{5}\n<|end_of_solution|>"
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def local_grpo(recipe_dict, path, **dataset):
    """The tiny recipe with GRPO reading a local file (and no eval, unless given)."""
    recipe_dict["sft"] = None
    recipe_dict["grpo"]["dataset"] = {"path": path, **dataset}
    return recipe_dict


def test_a_local_gsm8k_copy_is_read_by_the_gsm8k_adapter(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"question": "Q?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"}])
    settings = DatasetSettings(path=path)
    assert settings.adapter == "gsm8k" and settings.adapter_inferred
    assert load_examples(settings, seed=0)[0]["answer"] == "4"  # the gold, not the worked solution
    assert "adapter gsm8k inferred from the rows" in settings.describe_source()


def test_a_local_openthoughts_copy_is_read_by_the_openthoughts_adapter(tmp_path):
    row = {
        "problem": "P",
        "solution": "\\boxed{5}",
        "conversations": [{"from": "assistant", "value": OPENTHOUGHTS_RESPONSE}],
    }
    settings = DatasetSettings(path=write_jsonl(tmp_path / "ot.jsonl", [row]))
    assert settings.adapter == "openthoughts" and settings.adapter_inferred
    assert load_examples(settings, seed=0)[0]["answer"] == "5"


def test_the_report_says_why_the_openthoughts_adapter_skipped_each_row(recipe_dict, tmp_path):
    """A row the dataset marks incorrect is counted apart from a row without a usable trace."""
    good = {
        "problem": "P",
        "solution": "\\boxed{5}",
        "conversations": [{"from": "assistant", "value": OPENTHOUGHTS_RESPONSE}],
    }
    rows = [
        good,
        {**good, "problem": "Q", "correct": False},
        {**good, "problem": "R", "conversations": [{"from": "assistant", "value": "no markers, \\boxed{5}"}]},
    ]
    path = write_jsonl(tmp_path / "ot.jsonl", rows)
    recipe_dict["sft"]["dataset"] = {"path": path, "max_samples": 8}
    prepared = prepare_stage(validate_recipe(recipe_dict), "sft", build_tokenizer(400))
    read = prepared.steps[0]
    assert read.rows_in == 3 and read.rows_out == 1
    assert read.removed == {
        "marked incorrect by the dataset (only_correct)": 1,
        "no thought/solution markers (no usable reasoning trace)": 1,
    }


def test_other_local_files_keep_the_columns_adapter(tmp_path):
    settings = DatasetSettings(path=write_jsonl(tmp_path / "d.jsonl", [{"question": "1+1?", "answer": "2"}]))
    assert settings.adapter == "columns" and not settings.adapter_inferred
    explicit = DatasetSettings(path=str(tmp_path / "d.jsonl"), adapter="columns")
    assert not explicit.adapter_inferred


def test_validate_says_which_adapter_it_inferred(recipe_dict, write_recipe, tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "Q?", "answer": "1 + 1 = 2\n#### 2"}])
    result = runner.invoke(app, ["validate", str(write_recipe(local_grpo(recipe_dict, path)))])
    assert result.exit_code == 0, result.output
    assert "(adapter gsm8k inferred from the rows)" in result.output


def test_a_malformed_line_read_through_datasets_is_one_line_naming_it(tmp_path):
    """Training reads through datasets, whose own error is ~110 lines; the line is found and named."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?", "answer": \n')
    with pytest.raises(RecipeError) as caught:
        load_examples(DatasetSettings(path=str(path), adapter="columns"), seed=0)
    assert "line 2 is not a JSON object" in str(caught.value) and "\n" not in str(caught.value)


def test_duplicates_exact_and_near(recipe_dict, tmp_path):
    base = "Tom has 12 red apples and buys 7 more at the market on Sunday. How many apples does Tom have now?"
    rows = [
        {"question": base, "answer": "19"},
        {"question": base.upper().replace(" ", "  "), "answer": "19"},  # an exact duplicate once normalised
        {"question": base.replace("Sunday", "Monday"), "answer": "19"},  # a near duplicate
        {"question": "A train leaves at 3 pm and arrives at 5 pm. How long is the trip in hours?", "answer": "2"},
    ]
    recipe = validate_recipe(
        local_grpo(recipe_dict, write_jsonl(tmp_path / "d.jsonl", rows), drop_duplicates=True, near_duplicates=0.7)
    )
    prepared = prepare_stage(recipe, "grpo", build_tokenizer(400))
    steps = {step.step: step for step in prepared.steps}
    assert steps["exact duplicates"].removed == {"same question as an earlier row": 1}
    assert sum(steps["near duplicates"].removed.values()) == 1
    assert [r["question"] for r in prepared.records] == [rows[0]["question"], rows[3]["question"]]


@pytest.mark.skipif(not HAS_GSM8K, reason="GSM8K is not next to the checkout")
def test_decontamination_catches_edited_copies_of_gsm8k_test_and_keeps_train(recipe_dict, tmp_path):
    """Every re-cased, re-spaced, re-punctuated or extended copy of a test question is removed; train is kept."""
    test = [json.loads(line) for line in (GSM8K_DIR / "test.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (GSM8K_DIR / "train.jsonl").read_text().splitlines()]
    rng = random.Random(0)
    picked = rng.sample(test, 50)
    copies = []
    for row in picked:
        question = row["question"]
        copies += [
            question.upper(),
            "  ".join(question.split()).replace(". ", ".\n"),
            question.replace(",", "").replace(".", " .").replace("?", "!?"),
            "Solve this carefully. " + question + " Show your work.",
        ]
    rows = [{"question": q, "answer": "x #### 1"} for q in copies] + train
    recipe_dict["eval"] = {"dataset": {"path": str(GSM8K_DIR / "test.jsonl"), "split": "test"}}
    recipe = validate_recipe(local_grpo(recipe_dict, write_jsonl(tmp_path / "mixed.jsonl", rows)))
    prepared = prepare_stage(recipe, "grpo", build_tokenizer(400))
    step = next(s for s in prepared.steps if s.step == "decontamination")
    removed = {entry["question"] for entry in step.listed}
    assert set(copies) <= removed  # all 200 edited copies
    kept_train = sum(1 for r in prepared.records if r["question"] in {t["question"] for t in train})
    assert kept_train / len(train) > 0.98
    assert all({"ngram", "benchmark", "benchmark_question"} <= entry.keys() for entry in step.listed)


def test_decontamination_can_be_switched_off_and_takes_extra_benchmarks(recipe_dict, tmp_path):
    question = "Mia reads 4 pages every day for 9 days in a row. How many pages does she read in all?"
    bench = write_jsonl(tmp_path / "bench.jsonl", [{"problem": question}])
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"question": question, "answer": "36"}, {"question": "1+1?", "answer": "2"}]
    )
    on = validate_recipe(local_grpo(recipe_dict, data, decontaminate={"benchmarks": [bench]}))
    prepared = prepare_stage(on, "grpo", build_tokenizer(400))
    assert [r["question"] for r in prepared.records] == ["1+1?"]
    off = validate_recipe(local_grpo(recipe_dict, data, decontaminate=False))
    assert len(prepare_stage(off, "grpo", build_tokenizer(400)).rows) == 2


def test_decontamination_checks_every_named_eval_set(recipe_dict, tmp_path):
    """A training question copied from the second eval set is removed, and the report names that set."""
    copied = "Ravi packs 6 boxes with 14 pencils in each box. How many pencils does Ravi pack in total?"
    first = write_jsonl(tmp_path / "first.jsonl", [{"question": "What is 3 times 5?", "answer": "15"}])
    second = write_jsonl(tmp_path / "second.jsonl", [{"question": copied, "answer": "84"}])
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"question": copied, "answer": "84"}, {"question": "1+1?", "answer": "2"}]
    )
    recipe_dict["eval"] = {
        "datasets": [
            {"name": "first", "path": first, "adapter": "columns"},
            {"name": "second", "path": second, "adapter": "columns"},
        ]
    }
    recipe = validate_recipe(local_grpo(recipe_dict, data))
    prepared = prepare_stage(recipe, "grpo", build_tokenizer(400))
    assert [r["question"] for r in prepared.records] == ["1+1?"]
    step = next(s for s in prepared.steps if s.step == "decontamination")
    assert [entry["benchmark"] for entry in step.listed] == [
        f"eval second ({recipe.eval.sets[1][2].describe_source()})"
    ]
    assert set(step.details["benchmarks"]) == {f"eval {t} ({d.describe_source()})" for _, t, d in recipe.eval.sets}


def test_generated_problems_are_decontaminated_by_exact_question(recipe_dict):
    """The demo's templated problems share 8-grams by design; train and test share no question."""
    recipe = validate_recipe(recipe_dict)
    assert recipe.grpo.dataset.decontaminate.match == "exact"
    prepared = prepare_stage(recipe, "grpo", build_tokenizer(400))
    step = next(s for s in prepared.steps if s.step == "decontamination")
    assert step.rows_in == 32 and not step.removed


def test_mixture_keeps_a_share_of_each_source_with_its_own_columns(recipe_dict, tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"q": f"a{i}?", "gold": i} for i in range(10)])
    second = write_jsonl(tmp_path / "b.jsonl", [{"question": f"b{i}?", "answer": str(i)} for i in range(4)])
    recipe_dict["sft"] = None
    recipe_dict["grpo"]["dataset"] = {
        "mixture": [
            {"path": first, "columns": {"question": "q", "answer": "gold"}, "weight": 0.5},
            {"path": second},
        ],
        "shuffle": True,
    }
    recipe = validate_recipe(recipe_dict)
    prepared = prepare_stage(recipe, "grpo", build_tokenizer(400))
    sources = [r["source"] for r in prepared.records]
    assert sources.count(0) == 5 and sources.count(1) == 4
    assert prepared.steps[0].rows_in == 9
    assert all(isinstance(r["answer"], str) for r in prepared.records)
    assert prepare_stage(recipe, "grpo", build_tokenizer(400)).records == prepared.records  # seeded


def test_fraction_and_max_samples_come_last(recipe_dict):
    recipe_dict["grpo"]["dataset"].update(fraction=0.25, max_samples=32)
    prepared = prepare_stage(validate_recipe(recipe_dict), "grpo", build_tokenizer(400))
    assert len(prepared.rows) == 8
    assert [s.step for s in prepared.steps][-2:] == ["fraction", "max_samples"]


class FakeRates:
    """Pass counts known in advance, for the filter's logic without a model."""

    def __init__(self, recipe, counts, samples=4):
        from recipe_cli.config import DifficultySettings

        self.recipe, self.model, self.counts = recipe, "model", counts
        self.settings = DifficultySettings(samples=samples, min_pass_rate=0.25, max_pass_rate=0.5)
        self.setup, self.path, self.cached, self.sampled, self.seconds = {}, "cache", 0, 0, 0.0

    def lookup(self, keys):
        return [self.counts.pop(0) if self.counts else None for _ in keys]

    def close(self):
        pass


def test_pass_rate_filter_keeps_the_range_and_counts_the_rest(recipe_dict):
    recipe = validate_recipe(recipe_dict)
    items = [{"row": {"question": f"q{i}", "answer": "1"}} for i in range(6)]
    step = StepReport("pass rate")
    rates = FakeRates(recipe, [0, 1, 2, 3, 4])  # the sixth prompt is not in the cache
    kept = list(filter_by_pass_rate(items, step, rates, build_tokenizer(400), sample=False))
    assert [item["row"]["question"] for item in kept] == ["q1", "q2", "q5"]
    assert step.removed == {"pass rate under min_pass_rate": 1, "pass rate over max_pass_rate": 2}
    assert step.details["histogram"] == {"0/4": 1, "1/4": 1, "2/4": 1, "3/4": 1, "4/4": 1}
    assert step.details["unmeasured"] == 1


class ScriptedEngine:
    """Generation without a model: the prompt asking "Say N (k right)" gets k of its samples right."""

    name = "scripted"
    calls = 0
    closed = 0

    def __init__(self, lengths=None):
        self.lengths = lengths or {}  # completion -> its length in tokens (default 8)

    def generate(self, prompts, decoding, batch_size):
        import re

        from recipe_cli.generation import Generation

        ScriptedEngine.calls += 1
        completions = []
        for prompt in prompts:
            gold, right = re.search(r"Say (\d+) \((\d) right\)", prompt).groups()
            # a wrong sample answers in the right tags but never closes its thought
            samples = [f"<think>ok</think><answer>{gold}</answer>"] * int(right) + [f"<answer>{gold}</answer>"] * 2
            completions.append(samples[: decoding.num_samples])
        tokens = [[self.lengths.get(c, 8) for c in samples] for samples in completions]
        return Generation(completions, [[False] * len(t) for t in tokens], tokens)

    def close(self):
        ScriptedEngine.closed += 1


def scripted_questions(tmp_path, rights):
    rows = [
        {"question": f"Say {i} ({right} right)", "answer": str(i), "reasoning": "ok"} for i, right in enumerate(rights)
    ]
    return write_jsonl(tmp_path / "scripted.jsonl", rows)


def test_pass_rates_are_scored_by_the_recipes_accuracy_reward(recipe_dict, tmp_path):
    """A pass is what GRPO pays 1.0 for: the answer after </think> (answer_after), not cut off (strict)."""
    from recipe_cli.config import DifficultySettings
    from recipe_cli.data.difficulty import PassRates

    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy", "params": {"mode": "strict", "answer_after": "</think>"}}]
    recipe_dict["grpo"]["trainer"]["max_completion_length"] = 16
    recipe = validate_recipe(recipe_dict)
    settings = DifficultySettings(samples=2, max_new_tokens=32)
    rates = PassRates(recipe, settings, "model", tmp_path / "cache", writes=False)
    assert rates.setup["accuracy"] == {"mode": "strict", "answer_after": "</think>", "max_completion_len": 16}
    prompts = ["Say 3 (2 right)", "Say 3 (1 right)", "Say 3 (0 right)"]
    rates._engine = ScriptedEngine()
    assert rates.sample(prompts, ["3"] * 3, ["a", "b", "c"]) == [2, 1, 0]
    # GRPO's budget reached: cut off, although the sampling budget is 32
    rates._engine = ScriptedEngine({"<think>ok</think><answer>3</answer>": 16})
    assert rates.sample(prompts[:1], ["3"], ["d"]) == [0]


@pytest.mark.parametrize("mode", ["flexible", "strict"])
def test_the_pass_rate_cache_follows_grpos_budget_only_where_it_decides_a_pass(recipe_dict, tmp_path, mode):
    """GRPO's max_completion_length fails a cut-off sample under strict only; flexible counts stay valid."""
    from recipe_cli.config import DifficultySettings
    from recipe_cli.data.difficulty import PassRates

    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy", "params": {"mode": mode}}]
    settings = DifficultySettings(samples=2, max_new_tokens=32)  # the same sampling budget

    def cache(budget):
        recipe_dict["grpo"]["trainer"]["max_completion_length"] = budget
        return PassRates(validate_recipe(recipe_dict), settings, "model", tmp_path, writes=False).path

    assert (cache(16) == cache(24)) == (mode == "flexible")


def test_recipe_data_filters_by_pass_rate_and_reads_the_cache_again(recipe_dict, write_recipe, tmp_path, monkeypatch):
    """Rows solved never or always leave, the ones in between stay; a second run samples nothing, a changed
    accuracy reward samples anew (the cache is keyed by its parameters)."""
    monkeypatch.setattr("recipe_cli.generation.load_engine", lambda backend, path, recipe: ScriptedEngine())
    ScriptedEngine.calls = ScriptedEngine.closed = 0
    rights = [0, 1, 2, 1, 0, 2]
    recipe_dict["sft"]["dataset"] = {
        "path": scripted_questions(tmp_path, rights),
        "difficulty": {"samples": 2, "min_pass_rate": 0.25, "max_pass_rate": 0.75},
    }
    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy", "params": {"answer_after": "</think>"}}]
    path = write_recipe(recipe_dict)
    data_dir = tmp_path / "runs" / "tiny" / "data"

    first = runner.invoke(app, ["data", str(path), "--stage", "sft"])
    assert first.exit_code == 0, first.output + repr(first.exception)
    step = next(s for s in json.loads((data_dir / "sft.json").read_text())["steps"] if s["step"] == "pass rate")
    assert step["removed"] == {"pass rate under min_pass_rate": 2, "pass rate over max_pass_rate": 2}
    assert step["sampled"] == 6 and step["histogram"] == {"0/2": 2, "1/2": 2, "2/2": 2}
    rows = [json.loads(line) for line in (data_dir / "sft.jsonl").read_text().splitlines()]
    assert [row["question"] for row in rows] == ["Say 1 (1 right)", "Say 3 (1 right)"]
    assert ScriptedEngine.calls == 1 and ScriptedEngine.closed == 1  # the sampling model let go before training

    again = runner.invoke(app, ["data", str(path), "--stage", "sft"])
    assert again.exit_code == 0, again.output + repr(again.exception)
    step = next(s for s in json.loads((data_dir / "sft.json").read_text())["steps"] if s["step"] == "pass rate")
    assert step["sampled"] == 0 and step["cached"] == 6 and ScriptedEngine.calls == 1
    assert len((data_dir / "sft.jsonl").read_text().splitlines()) == 2

    recipe_dict["grpo"]["rewards"] = [{"name": "accuracy"}]  # every sample now passes: a new cache
    changed = runner.invoke(app, ["data", str(write_recipe(recipe_dict)), "--stage", "sft"])
    assert changed.exit_code != 0 and "no row is left" in changed.output
    assert ScriptedEngine.calls == 2 and len(list((data_dir / "pass_rates").glob("*.jsonl"))) == 2


def test_recipe_data_shows_the_stage_as_the_command_line_gives_it(recipe_dict, write_recipe):
    """On a run whose grpo trained, `recipe data --stage grpo --set grpo.dataset...` shows what `recipe grpo
    --overwrite` would train on, not the recorded data."""
    import copy
    import re

    from recipe_cli.runs import RunFolder

    RunFolder(validate_recipe(copy.deepcopy(recipe_dict))).record_training("grpo", None)  # max_samples 32
    path = write_recipe(recipe_dict)
    result = runner.invoke(
        app, ["data", str(path), "--stage", "grpo", "--dry-run", "--set", "grpo.dataset.max_samples=8"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"read\s+│\s+8\s+│", result.output), result.output
    assert "for model, prompt, seed\n" in result.output  # the shared sections still come from the run


def test_recipe_data_keeps_the_rows_a_stage_trained_on(recipe_dict, write_recipe, tmp_path):
    """data/<stage>.jsonl is the record of what the stage trained on: other settings do not replace it."""
    recipe_dict["sft"]["dataset"]["max_samples"] = 8
    path = write_recipe(recipe_dict)
    data_dir = tmp_path / "runs" / "tiny" / "data"
    first = runner.invoke(app, ["data", str(path), "--stage", "sft"])
    assert first.exit_code == 0, first.output
    trained = (data_dir / "sft.jsonl").read_text()
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import prepare_stage_data

    recipe = validate_recipe(recipe_dict)
    RunFolder(recipe).record_training("sft", None, data=prepare_stage_data(recipe, "sft").fingerprint())
    same = runner.invoke(app, ["data", str(path), "--stage", "sft"])
    assert same.exit_code == 0, same.output  # the same rows: written again
    other = runner.invoke(app, ["data", str(path), "--stage", "sft", "--set", "sft.dataset.max_samples=4"])
    assert other.exit_code == 2 and "holds the rows sft trained on" in " ".join(other.output.split())
    assert (data_dir / "sft.jsonl").read_text() == trained


@pytest.mark.slow
def test_recipe_data_writes_the_rows_and_samples_pass_rates_once(recipe_dict, write_recipe, tmp_path):
    recipe_dict["sft"]["dataset"].update(max_samples=8)
    recipe_dict["sft"]["dataset"]["difficulty"] = {"samples": 2, "max_new_tokens": 4, "min_pass_rate": 0.0}
    path = write_recipe(recipe_dict)
    data_dir = tmp_path / "runs" / "tiny" / "data"

    dry = runner.invoke(app, ["data", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "pass rate" in dry.output and "not measured" in dry.output
    assert not data_dir.exists()

    first = runner.invoke(app, ["data", str(path), "--stage", "sft"])
    assert first.exit_code == 0, first.output + repr(first.exception)
    report = json.loads((data_dir / "sft.json").read_text())
    step = next(s for s in report["steps"] if s["step"] == "pass rate")
    assert step["sampled"] == 8 and sum(step["histogram"].values()) == 8
    rows = [json.loads(line) for line in (data_dir / "sft.jsonl").read_text().splitlines()]
    assert len(rows) == report["rows"] == 8
    assert {"question", "answer", "completion", "input_ids", "completion_mask", "pass_rate"} <= rows[0].keys()
    assert [s["step"] for s in report["steps"]] == [
        "read",
        "decontamination",
        "token lengths",
        "pass rate",
        "max_samples",
    ]
    assert report["seed"] == 7

    again = runner.invoke(app, ["data", str(path), "--stage", "sft"])
    assert again.exit_code == 0, again.output
    step = next(s for s in json.loads((data_dir / "sft.json").read_text())["steps"] if s["step"] == "pass rate")
    assert step["sampled"] == 0 and step["cached"] == 8  # read back, not sampled again


def test_the_up_front_check_hands_on_only_data_that_is_final(recipe_dict):
    """`recipe run` trains on the data it checked, except where a pass-rate filter must sample the stage's start."""
    from recipe_cli.runs import RunFolder
    from recipe_cli.training import check_training_data, prepare_base_model, prepare_stage_data

    recipe_dict["grpo"]["dataset"]["difficulty"] = {"samples": 2, "max_new_tokens": 4}
    recipe = validate_recipe(recipe_dict)
    final = check_training_data(recipe, prepare_base_model(recipe, RunFolder(recipe)))
    assert list(final) == ["sft"]  # GRPO's filter samples from SFT's checkpoint, which is not trained yet
    again = prepare_stage_data(recipe, "sft", training=True)
    assert final["sft"].rows == again.rows and final["sft"].records == again.records


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GSM8K, reason="GSM8K is not next to the checkout")
def test_recipe_data_on_the_gsm8k_recipe_offline(tmp_path):
    """`recipe data recipes/gsm8k.yaml` on the local GSM8K files, with a local model folder for the tokenizer."""
    from recipe_cli.tiny_model import build_tiny_model

    from .conftest import REPO

    model = build_tiny_model(
        tmp_path / "model", hidden_size=32, num_layers=2, num_heads=2, vocab_size=400, max_length=256, seed=0
    )
    result = runner.invoke(
        app,
        [
            "data",
            str(REPO / "recipes" / "gsm8k.yaml"),
            "--stage",
            "grpo",
            "--set",
            f"grpo.dataset.path={GSM8K_DIR / 'train.jsonl'}",
            "--set",
            f"eval.dataset.path={GSM8K_DIR / 'test.jsonl'}",
            "--set",
            f"model.path={model}",
            "--set",
            f"runs_dir={tmp_path / 'runs'}",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads((tmp_path / "runs" / "qwen2.5-0.5b-r1-gsm8k" / "data" / "grpo.json").read_text())
    steps = {step["step"]: step for step in report["steps"]}
    assert steps["read"]["rows_out"] == 7473
    assert steps["decontamination"]["removed"] == {"shared word 8-gram with a benchmark question": 90}
    assert len(steps["decontamination"]["removed_rows"]) == 90
    rows = (tmp_path / "runs" / "qwen2.5-0.5b-r1-gsm8k" / "data" / "grpo.jsonl").read_text().splitlines()
    assert len(rows) == report["rows"] and json.loads(rows[0])["answer"].lstrip("-").isdigit()
