"""Data adapters: GSM8K, OpenThoughts, generic columns, and the generated arithmetic problems."""

from __future__ import annotations

import json

import pytest

from recipe_cli.config import DatasetSettings, validate_recipe
from recipe_cli.data import build_messages, load_examples, sft_rows, split_gsm8k_answer
from recipe_cli.errors import RecipeError
from recipe_cli.synthetic import generate_problems

from .conftest import GSM8K_DIR


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_gsm8k_answer_split():
    reasoning, gold = split_gsm8k_answer("Half of 48 is <<48/2=24>>24.\n#### 1,024")
    assert reasoning == "Half of 48 is 24."
    assert gold == "1024"


def test_gsm8k_adapter_on_a_local_file(tmp_path):
    path = write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": "Q?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"}])
    rows = load_examples(DatasetSettings(path=path, adapter="gsm8k"), seed=0)
    assert rows == [{"question": "Q?", "answer": "4", "reasoning": "2 + 2 = 4", "final": "4"}]


@pytest.mark.skipif(not (GSM8K_DIR / "test.jsonl").is_file(), reason="GSM8K is not next to the checkout")
def test_gsm8k_release_loads_through_the_adapter():
    rows = load_examples(DatasetSettings(path=str(GSM8K_DIR / "test.jsonl"), adapter="gsm8k", split="test"), seed=0)
    assert len(rows) == 1319
    assert rows[0]["answer"] == "18"
    assert all(row["answer"].lstrip("-").isdigit() for row in rows)


def test_openthoughts_adapter(tmp_path):
    response = "<|begin_of_thought|>\nthink hard\n<|end_of_thought|>\n\n<|begin_of_solution|>\nSo \\boxed{5}\n<|end_of_solution|>"
    rows = [
        {
            "problem": "P1",
            "solution": "\\boxed{5}",
            "correct": True,
            "messages": [{"role": "user", "content": "P1"}, {"role": "assistant", "content": response}],
        },
        {
            "problem": "P2",
            "solution": "\\boxed{6}",
            "correct": False,
            "messages": [{"role": "assistant", "content": response}],
        },
        {
            "problem": "P3",
            "solution": "\\boxed{7}",
            "correct": True,
            "conversations": [{"from": "assistant", "value": response}],
        },
    ]
    path = write_jsonl(tmp_path / "ot.jsonl", rows)
    examples = load_examples(DatasetSettings(path=path, adapter="openthoughts"), seed=0)
    assert [e["question"] for e in examples] == ["P1", "P3"]  # the incorrect trace is dropped
    assert examples[0] == {"question": "P1", "answer": "5", "reasoning": "think hard", "final": "So \\boxed{5}"}


def test_columns_adapter_maps_names(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1?", "target": 2}])
    settings = DatasetSettings(path=path, columns={"question": "problem", "answer": "target"})
    assert settings.adapter == "columns"
    assert load_examples(settings, seed=0) == [{"question": "1+1?", "answer": "2", "reasoning": None, "final": "2"}]


def test_missing_column_names_the_fix(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1?", "target": 2}])
    with pytest.raises(
        RecipeError, match=r"no column 'question' \(for question\).*columns are \['problem', 'target'\]"
    ):
        load_examples(DatasetSettings(path=path), seed=0)


def test_max_samples_and_split_of_a_local_file(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": str(i), "answer": str(i)} for i in range(10)])
    rows = load_examples(DatasetSettings(path=path, split="validation", max_samples=3), seed=0)
    assert [r["question"] for r in rows] == ["0", "1", "2"]


def test_arithmetic_splits_are_disjoint_and_seeded():
    train = generate_problems("train", 2000, seed=1)
    test = generate_problems("test", 300, seed=1)
    assert not {p["question"] for p in train} & {p["question"] for p in test}
    assert generate_problems("test", 300, seed=1) == test
    assert generate_problems("test", 300, seed=2) != test
    for problem in test[:50]:
        steps = problem["reasoning"].splitlines()
        assert steps[-1].endswith(f"= {problem['answer']}")


def test_sft_rows_use_the_completion_template(recipe_dict):
    recipe = validate_recipe(recipe_dict)
    row = {"question": "Q?", "answer": "4", "reasoning": "2 + 2 = 4", "final": "4"}
    example = sft_rows([row], recipe)[0]
    assert example["prompt"] == build_messages("Q?", recipe.prompt)
    assert example["completion"] == [
        {"role": "assistant", "content": "<think>\n2 + 2 = 4\n</think>\n<answer>4</answer>"}
    ]
