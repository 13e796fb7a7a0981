"""Data adapters: GSM8K, OpenThoughts, generic columns, and the generated arithmetic problems."""

from __future__ import annotations

import json
import re

import pytest

from recipe_cli.config import DatasetSettings, validate_recipe
from recipe_cli.data import build_prompt, load_examples, split_gsm8k_answer
from recipe_cli.errors import RecipeError
from recipe_cli.synthetic import generate_problems, mistake_kind

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
            # as in open-r1/OpenThoughts-114k-math: messages hold NuminaMath's solution, conversations R1's trace
            "messages": [{"role": "user", "content": "P1"}, {"role": "assistant", "content": "Numina: \\boxed{5}"}],
            "conversations": [{"from": "user", "value": "P1"}, {"from": "assistant", "value": response}],
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
    assert generate_problems("train", 2000, seed=1) == train and generate_problems("train", 2000, seed=2) != train
    # the test problems are the same for every seed, so runs of two seeds are evaluated on the same problems
    assert generate_problems("test", 300, seed=2) == test and generate_problems("test", 100, seed=3) == test[:100]
    for problem in test[:50]:
        steps = problem["reasoning"].splitlines()
        assert steps[-1].endswith(f"= {problem['answer']}")


def test_sft_examples_are_the_rendered_prompt_then_the_completion(recipe_dict):
    """The loss covers exactly the completion template's text and the end-of-turn token."""
    from recipe_cli.data import prepare_sft
    from recipe_cli.tiny_model import build_tokenizer

    recipe = validate_recipe(recipe_dict)
    tokenizer = build_tokenizer(400)
    prepared = prepare_sft(recipe, tokenizer)
    row = generate_problems("train", 1, recipe.seed)[0]
    example = prepared.rows[0]
    ids, mask = example["input_ids"], example["completion_mask"]
    start = mask.index(1)
    assert mask == [0] * start + [1] * (len(ids) - start)
    prompt = tokenizer.apply_chat_template(
        build_prompt(row["question"], recipe.prompt), tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.decode(ids[:start]) == prompt
    completion = f"<think>\n{row['reasoning']}\n</think>\n<answer>{row['final']}</answer>"
    assert tokenizer.decode(ids[start:]) == completion + "<|im_end|>"
    assert len(prepared.rows) == prepared.read == 32 and not prepared.dropped


def test_teacher_error_rate_slips_only_the_final_answer_of_two_step_problems():
    rows = generate_problems("train", 1000, seed=3, teacher_error_rate=0.5)
    two_step = [r for r in rows if "\n" in r["reasoning"]]
    slipped = [r for r in two_step if r["final"] != r["answer"]]
    assert 0.4 < len(slipped) / len(two_step) < 0.6
    for row in slipped:
        first_result = row["reasoning"].splitlines()[0].rsplit("= ", 1)[1]
        assert row["final"] == first_result
        assert row["reasoning"].endswith(f"= {row['answer']}")  # the steps stay right
    assert all(r["final"] == r["answer"] for r in rows if "\n" not in r["reasoning"])
    clean = generate_problems("train", 1000, seed=3)
    assert [r["question"] for r in clean] == [r["question"] for r in rows]  # same problems, noise aside


def test_mistake_kind_names_the_teachers_slip_and_arithmetic_errors():
    """The teacher's own solutions read as right or as its slip; a miscomputed step reads as arithmetic."""
    rows = generate_problems("train", 500, seed=3, teacher_error_rate=0.5)
    kinds = {(r["final"] == r["answer"], mistake_kind(r["reasoning"], r["final"], r["answer"])) for r in rows}
    assert kinds == {(True, "right"), (False, "slip")}
    row = next(r for r in rows if "\n" in r["reasoning"])
    first, second = row["reasoning"].splitlines()
    wrong_first = first.rsplit("= ", 1)[0] + f"= {int(first.rsplit('= ', 1)[1]) + 1}"
    assert mistake_kind(f"{wrong_first}\n{second}", row["answer"] + "1", row["answer"]) == "arithmetic"
    assert mistake_kind(first, first.rsplit("= ", 1)[1], row["answer"]) == "other"  # one step where two are needed
    assert mistake_kind("no steps", None, row["answer"]) == "other"


def test_teacher_error_rate_belongs_to_the_arithmetic_adapter():
    with pytest.raises(ValueError, match="applies to `adapter: arithmetic` only"):
        DatasetSettings(path="openai/gsm8k", teacher_error_rate=0.5)


def test_prompt_filter_counts_tokens_not_keys(recipe_dict):
    """apply_chat_template(tokenize=True) returns a BatchEncoding in transformers 5; its len is 2, not the tokens."""
    from recipe_cli.data import count_prompt_tokens, prepare_grpo, prompt_rows
    from recipe_cli.tiny_model import build_tokenizer

    tokenizer = build_tokenizer(400)
    recipe = validate_recipe(recipe_dict)
    rows = prompt_rows(generate_problems("train", 32, recipe.seed), recipe.prompt)
    lengths = sorted(count_prompt_tokens(tokenizer, row["prompt"]) for row in rows)
    assert 2 < lengths[0] < lengths[-1]
    recipe_dict["grpo"]["dataset"]["max_prompt_tokens"] = lengths[15]
    prepared = prepare_grpo(validate_recipe(recipe_dict), tokenizer)
    kept = sum(1 for n in lengths if n <= lengths[15])
    assert prepared.read == 32 and len(prepared.rows) == kept
    assert prepared.dropped == {"prompt over max_prompt_tokens": 32 - kept}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("d.csv", b'question,answer\n"caf\xe9?","4"\n', r"d.csv' is not UTF-8 text: line 2 \(byte 20\)"),
        ("d.json", b'[{"question": "caf\xe9?", "answer": "4"}]', r"d.json' is not UTF-8 text: line 1 \(byte 18\)"),
        ("d.parquet", b"question,answer\n", r"d.parquet' is not a parquet file, or it is cut off"),
    ],
)
def test_a_file_datasets_cannot_read_is_one_line_naming_the_file(tmp_path, name, content, expected):
    """Training reads the file through ``datasets`` (validate reads up to 64 MiB of it): the same one line."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(RecipeError, match=expected) as caught:
        load_examples(DatasetSettings(path=str(tmp_path / name), adapter="columns"), seed=0)
    assert "\n" not in str(caught.value)


def test_a_local_folder_that_does_not_load_is_named_a_folder(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(RecipeError, match=r"data' is a folder that could not be loaded .*point `path` at a") as caught:
        load_examples(DatasetSettings(path=str(tmp_path / "data"), adapter="gsm8k"), seed=0)
    assert "network" not in str(caught.value)


@pytest.mark.parametrize(("split", "expected"), [("train[:3]", ["0", "1", "2"]), ("test[-2:]", ["8", "9"])])
def test_a_sliced_split_of_a_local_file_reads_that_slice(tmp_path, split, expected):
    """`split: train[:1000]` slices a Hub dataset's split; a local file is the one split the slice is taken from."""
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": str(i), "answer": str(i)} for i in range(10)])
    rows = load_examples(DatasetSettings(path=path, split=split), seed=0)
    assert [r["question"] for r in rows] == expected


def test_a_split_slice_datasets_cannot_read_is_one_line_with_the_form(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": str(i), "answer": str(i)} for i in range(10)])
    with pytest.raises(RecipeError, match=r"split 'train\[20:\]' cannot be read .*slice a split as `train\[:1000\]`"):
        load_examples(DatasetSettings(path=path, split="train[20:]"), seed=0)


def test_a_config_a_local_dataset_folder_lacks_names_its_configs(tmp_path):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "train.jsonl", [{"question": "1+1?", "answer": "2"}])
    settings = DatasetSettings(path=str(tmp_path), config="metadata", adapter="columns")
    with pytest.raises(RecipeError, match=r"has no config 'metadata' \(.*Available: \['default'\]\); set `config`"):
        load_examples(settings, seed=0)


def test_csv_cells_are_read_as_the_file_writes_them(tmp_path):
    """As `recipe validate` reads them: datasets would guess each column's type (a float column turns 2 into 2.0, a
    20-digit answer into 1.2e+19, 007 into 7) and read NA or None as null."""
    path = tmp_path / "d.csv"
    golds = ["2", "4.0", "007", "12345678901234567891", "None", "NA"]
    path.write_text("question,answer\n" + "".join(f"q{i}?,{gold}\n" for i, gold in enumerate(golds)))
    rows = load_examples(DatasetSettings(path=str(path)), seed=0)
    assert [row["answer"] for row in rows] == golds


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("d.csv", "question,answer\r\n2+2?,4\r\n"),
        ("d.jsonl", '{"question": "2+2?", "answer": "4"}\n'),
        ("d.json", '[{"question": "2+2?", "answer": "4"}]'),
    ],
)
def test_a_file_saved_with_a_byte_order_mark_reads_as_without(tmp_path, name, text):
    """Excel's and Notepad's UTF-8 files open with a BOM; datasets reads past it, and so does validate."""
    from recipe_cli.data.sources import check_local_source

    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    settings = DatasetSettings(path=str(path))
    assert check_local_source(settings, "grpo.dataset") is None
    assert load_examples(settings, seed=0) == [{"question": "2+2?", "answer": "4", "reasoning": None, "final": "4"}]


@pytest.mark.parametrize(
    ("adapter", "row", "expected"),
    [
        (
            "columns",
            {"question": "2+2?", "answer": " "},
            r"row 1( \(line 2\))?: column 'answer' \(the gold answer\) is empty",
        ),
        (
            "gsm8k",
            {"question": "2+2?", "answer": "2 + 2\n####"},
            r"row 1( \(line 2\))?: the answer has nothing after '####'",
        ),
        ("prompt_completion", {"prompt": "2+2?", "solution": " "}, r"the row asking '2\+2\?' has no gold answer"),
    ],
)
def test_an_empty_gold_is_one_line_in_validate_and_in_training(tmp_path, adapter, row, expected):
    """As a null gold is: GRPO and the eval would score every answer against nothing."""
    from recipe_cli.data.sources import check_local_source

    first = {"question": "1+1?", "answer": "1 + 1\n#### 2"} if adapter == "gsm8k" else {**row, "answer": "2"}
    path = write_jsonl(tmp_path / "d.jsonl", [first, row])
    settings = DatasetSettings(path=path, adapter=adapter)
    assert re.search(expected, check_local_source(settings, "grpo.dataset"))
    if adapter != "prompt_completion":  # the chain refuses those rows for GRPO (tests/test_data_chain.py)
        with pytest.raises(RecipeError, match=expected):
            load_examples(settings, seed=0)


def _turns(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _trace(answer: str) -> str:
    return f"<|begin_of_thought|>t<|end_of_thought|><|begin_of_solution|>\\boxed{{{answer}}}<|end_of_solution|>"


@pytest.mark.parametrize(
    ("adapter", "row", "expected"),
    [
        ("columns", {"question": "{q}", "answer": "4"}, r"row 1( \(line 2\))?: column 'question' \(the question\) is"),
        ("gsm8k", {"question": "{q}", "answer": "2 + 2\n#### 4"}, r"column 'question' \(the question\) is empty"),
        (
            "prompt_completion",
            {"prompt": "{q}", "completion": "4", "solution": "4"},
            r"row 1.*: the prompt asks nothing",
        ),
        ("messages", {"messages": "{q}", "solution": "4"}, r"row 1.*: the prompt asks nothing"),
        (
            "openthoughts",
            {"problem": "{q}", "conversations": [{"from": "assistant", "value": _trace("4")}]},
            r"column 'problem' \(the question\) is empty",
        ),
    ],
)
def test_an_empty_question_is_one_line_in_validate_and_in_training(tmp_path, adapter, row, expected):
    """As an empty gold is: the model would be trained on, and scored for, answering nothing."""
    from recipe_cli.data.sources import check_local_source

    def asking(question: str) -> dict:
        return {key: (question if value == "{q}" else value) for key, value in row.items()} | (
            {"messages": _turns(question, "4")} if adapter == "messages" else {}
        )

    path = write_jsonl(tmp_path / "d.jsonl", [asking("2+2?"), asking(" ")])
    settings = DatasetSettings(path=path, adapter=adapter)
    assert re.search(expected, check_local_source(settings, "sft.dataset"))
    with pytest.raises(RecipeError, match=expected):
        load_examples(settings, seed=0)


def test_folders_written_by_save_to_disk_read_their_rows_and_splits(tmp_path):
    """A saved Dataset is the split the recipe names (as a local file is); a saved DatasetDict has the splits it
    names in dataset_dict.json, `train_sft` included, which datasets' folder guess reads as `train`."""
    import datasets

    rows = [{"question": f"{i}+1?", "answer": str(i + 1)} for i in range(6)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "one"))
    splits = {"train_sft": rows[:4], "test_sft": rows[4:]}
    datasets.DatasetDict({name: datasets.Dataset.from_list(part) for name, part in splits.items()}).save_to_disk(
        str(tmp_path / "dict")
    )

    def questions(path, split):
        settings = DatasetSettings(path=str(tmp_path / path), split=split, adapter="columns")
        return [row["question"] for row in load_examples(settings, seed=0)]

    assert questions("one", "train") == questions("one", "test") == [row["question"] for row in rows]
    assert questions("one", "train[:2]") == ["0+1?", "1+1?"]
    assert questions("dict", "test_sft") == ["4+1?", "5+1?"]
    assert questions("dict", "train_sft[-1:]") == ["3+1?"]
    with pytest.raises(RecipeError, match=r"has no split 'train': .*\['train_sft', 'test_sft'\]"):
        questions("dict", "train")


@pytest.mark.parametrize(("name", "text"), [("state.json", '{"step": 3}'), ("dataset_dict.json", "{}")])
def test_a_folder_with_a_file_named_as_save_to_disk_names_its_own_is_no_saved_dataset(tmp_path, name, text):
    """A folder of rows beside another tool's state.json or dataset_dict.json is loaded as datasets loads it (it
    refuses a state.json: one line), not read as a saved dataset's Arrow files."""
    (tmp_path / "rows").mkdir()
    write_jsonl(tmp_path / "rows" / "data.jsonl", [{"question": "1+1?", "answer": "2"}])
    (tmp_path / "rows" / name).write_text(text)
    settings = DatasetSettings(path=str(tmp_path / "rows"), adapter="columns")
    if name == "dataset_dict.json":
        assert [row["answer"] for row in load_examples(settings, seed=0)] == ["2"]
        return
    with pytest.raises(RecipeError, match=r"rows' is a folder that could not be loaded") as caught:
        load_examples(settings, seed=0)
    assert "\n" not in str(caught.value)


def test_a_path_under_the_home_folder_is_read_as_validate_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_jsonl(tmp_path / "d.jsonl", [{"question": "1+1?", "answer": "2"}])
    assert [row["answer"] for row in load_examples(DatasetSettings(path="~/d.jsonl"), seed=0)] == ["2"]


def test_a_gold_written_as_a_json_number_keeps_its_decimals(tmp_path):
    """Python writes 0.00001 as 1e-05, which the answer checker does not read as the model's 0.00001."""
    from recipe_cli.answers import check_answer

    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "1/100000?", "answer": 0.00001}\n{"question": "big?", "answer": 2.5e15}\n')
    rows = load_examples(DatasetSettings(path=str(path)), seed=0)
    assert [row["answer"] for row in rows] == ["0.00001", "2500000000000000.0"]
    assert check_answer("0.00001", rows[0]["answer"]) and check_answer("2500000000000000", rows[1]["answer"])


@pytest.mark.parametrize(
    "golds",
    [["12345678901234567890", "18"], ["9007199254740993", "0.5"]],  # past int64; past 2**53 beside a decimal
    ids=["int64", "float-column"],
)
def test_a_gold_json_number_too_large_to_read_exactly_is_refused(tmp_path, golds):
    """datasets reads these as floats: 12345678901234567890 became the gold 12345678901234567000, 9007199254740993
    became 9007199254740992, and the right answer scored 0."""
    from recipe_cli.data.sources import check_local_source

    path = tmp_path / "d.jsonl"
    path.write_text("".join(f'{{"question": "q{i}?", "answer": {gold}}}\n' for i, gold in enumerate(golds)))
    settings = DatasetSettings(path=str(path), adapter="columns")
    message = r"column 'answer' \(the gold answer\) is .*; write it in the file as a string"
    with pytest.raises(RecipeError, match=message):
        load_examples(settings, seed=0)
    if int(golds[0]) >= 2**63:  # validate reads the exact integer; datasets makes every such one a float
        assert re.search(message, check_local_source(settings, "grpo.dataset"))
    path.write_text("".join(f'{{"question": "q{i}?", "answer": "{gold}"}}\n' for i, gold in enumerate(golds)))
    assert [row["answer"] for row in load_examples(settings, seed=0)] == golds  # as strings they read exactly


def test_a_mixture_source_gives_at_most_its_own_max_samples(tmp_path):
    first = write_jsonl(tmp_path / "a.jsonl", [{"question": f"a{i}", "answer": str(i)} for i in range(10)])
    second = write_jsonl(tmp_path / "b.jsonl", [{"question": f"b{i}", "answer": str(i)} for i in range(10)])
    settings = DatasetSettings(mixture=[{"path": first, "max_samples": 3}, {"path": second}])
    assert [row["question"] for row in load_examples(settings, seed=0)] == ["a0", "a1", "a2"] + [
        f"b{i}" for i in range(10)
    ]


def test_a_local_copy_of_a_hub_dataset_is_read_by_the_adapter_its_rows_fit(tmp_path):
    """`hf download openai/gsm8k --local-dir gsm8k` or save_to_disk: read with the columns adapter, GSM8K's worked
    solution was the gold, which no answer equals; the rows are the Hub's, so is the adapter."""
    import datasets
    import pandas as pd

    rows = [{"question": f"{i} + 1?", "answer": f"{i} + 1 = <<{i}+1={i + 1}>>{i + 1}\n#### {i + 1}"} for i in range(4)]
    (tmp_path / "gsm8k" / "main").mkdir(parents=True)
    (tmp_path / "gsm8k" / ".cache").mkdir()  # hf download's own files
    (tmp_path / "gsm8k" / ".cache" / "x.json").write_text("{}")
    pd.DataFrame(rows).to_parquet(tmp_path / "gsm8k" / "main" / "train-00000-of-00001.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for folder in ("gsm8k", "saved"):
        settings = DatasetSettings(path=str(tmp_path / folder))
        assert settings.adapter == "gsm8k" and settings.adapter_inferred
        assert [row["answer"] for row in load_examples(settings, seed=0)] == ["1", "2", "3", "4"]


def test_a_dataset_folder_with_several_configs_and_none_chosen_names_them(tmp_path):
    for config in ("main", "socratic"):
        (tmp_path / config).mkdir()
        write_jsonl(tmp_path / config / "train.jsonl", [{"question": "1+1?", "answer": "2"}])
    (tmp_path / "README.md").write_text(
        "---\nconfigs:\n"
        + "".join(
            f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train.jsonl\n"
            for c in ("main", "socratic")
        )
        + "---\n"
    )
    with pytest.raises(RecipeError, match=r"has several configs, \['main', 'socratic'\]; set `config` to one of them"):
        load_examples(DatasetSettings(path=str(tmp_path), adapter="columns"), seed=0)


def test_a_csv_header_naming_a_column_twice_is_one_line(tmp_path):
    """Training would read the first of the two columns, validate the last: neither is surely the one meant."""
    from recipe_cli.data.sources import check_local_source

    (tmp_path / "d.csv").write_text("question,answer,answer\n1+1?,2,3\n")
    problem = check_local_source(DatasetSettings(path=str(tmp_path / "d.csv"), adapter="columns"), "grpo.dataset")
    assert problem.endswith("has two columns named 'answer'; rename one in the header line")


def test_arithmetic_problems_are_counted_exactly():
    """``count_problems`` is the number of distinct problems a split holds: that many can be generated, and
    further draws find no other (max_value 4: the smallest that allows every story)."""
    import random

    from recipe_cli.synthetic import _draw, _in_test_split, count_problems

    available = count_problems("test", max_value=4)
    every = {row["question"] for row in generate_problems("test", available, seed=0, max_value=4)}
    assert len(every) == available
    rng = random.Random(1)
    drawn = {question for question in (_draw(rng, 4)["question"] for _ in range(20_000)) if _in_test_split(question)}
    assert drawn <= every


@pytest.mark.parametrize("split", ["train", "test"])
def test_more_arithmetic_problems_than_exist_is_a_recipe_error(recipe_dict, split):
    """Asking for more than the generator holds used to draw for minutes (200 draws per problem asked) and then
    end in a traceback; the schema refuses it, naming how many there are."""
    from recipe_cli.synthetic import ALWAYS_ENOUGH, count_problems

    available = count_problems(split)
    assert available > ALWAYS_ENOUGH  # the schema counts only above it
    recipe_dict["sft"]["dataset"] = {"adapter": "arithmetic", "split": split, "max_samples": available + 1}
    with pytest.raises(RecipeError, match=f"sft.dataset: max_samples {available + 1}: .* {available} distinct"):
        validate_recipe(recipe_dict)
    recipe_dict["sft"]["dataset"]["max_samples"] = available
    assert validate_recipe(recipe_dict).sft.dataset.max_samples == available
