"""Publishing: the model card, and clear errors when the Hub cannot be used."""

from __future__ import annotations

import json

import pytest
import yaml

from recipe_cli.config import validate_recipe
from recipe_cli.errors import RecipeError
from recipe_cli.hub import push_checkpoint, render_model_card
from recipe_cli.runs import RunFolder


@pytest.fixture
def trained_run(recipe_dict, tmp_path):
    """A run folder that records a finished GRPO stage and holds an eval summary."""
    recipe_dict["push"] = {"repo_id": "someone/tiny-r1"}
    recipe = validate_recipe(recipe_dict)
    run = RunFolder(recipe)
    checkpoint = run.stage_dir("grpo")
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text("{}")
    run.record_stage("grpo", checkpoint, lora=False, base=str(run.stage_dir("base")), started_from="sft")
    run.eval_dir.mkdir()
    summary = {"label": "grpo", "dataset": "arithmetic", "split": "test", "n": 8, "accuracy": 0.625, "format_rate": 1.0}
    (run.eval_dir / "grpo.json").write_text(json.dumps(summary))
    return recipe


def test_model_card_has_metadata_eval_table_and_recipe(trained_run):
    card = render_model_card(trained_run, "grpo", "runs/tiny/base")
    front = yaml.safe_load(card.split("---")[1])
    assert "recipe" in front["tags"] and "grpo" in front["tags"]
    assert "| grpo | arithmetic | test | 8 | 0.625 | 1.000 |" in card
    assert "name: tiny" in card  # the full recipe
    assert "from **runs/tiny/base**" in card


def test_push_without_a_token_names_the_fix(trained_run, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(RecipeError, match="not logged in.*hf auth login"):
        push_checkpoint(trained_run)


def test_push_to_an_unreachable_hub_is_a_clear_error(trained_run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(RecipeError, match="cannot reach the Hub.*Connection refused"):
        push_checkpoint(trained_run)
