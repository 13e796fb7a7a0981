"""scripts/bench_gpu.py, the GPU benchmark, checked end to end on CPU with its 2-layer model (--tiny)."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys

import pytest

from .conftest import GSM8K_DIR, REPO


def test_the_bounds_medians_and_variant_settings(load_script):
    bench = load_script("bench_gpu")
    assert doctest.testmod(bench).failed == 0
    assert bench.after_first([30.0, 2.0, 4.0]) == 3.0  # the first step carries warm-up and compilation
    assert bench.after_first([5.0]) == 5.0
    shipped = {"grpo.trainer.max_steps": 3, "grpo.trainer.gradient_accumulation_steps": 8, "sft.trainer.max_steps": 3}
    doubled = bench.variant_settings("grpo-generation-x2", shipped)  # a warm-up cycle and a measured one, whole
    assert doubled["grpo.trainer.max_steps"] == 4 and doubled["grpo.trainer.steps_per_generation"] == 16
    assert doubled["sft"] == "null" and "sft.trainer.max_steps" not in doubled  # GRPO from the model itself
    assert bench.variant_settings("sft-padding-free", shipped)["sft.trainer.max_length"] == "null"


@pytest.mark.slow
@pytest.mark.skipif(not (GSM8K_DIR / "train.jsonl").is_file(), reason="GSM8K is not beside the checkout")
def test_the_benchmark_measures_each_variant_or_says_why_not(tmp_path):
    output = tmp_path / "results.json"
    command = [sys.executable, "scripts/bench_gpu.py", "--tiny", "--steps", "1", "--work", str(tmp_path / "work")]
    command += ["--variants", "grpo,sft-padding-free,grpo-vllm", "--output", str(output)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(output.read_text())
    grpo, sft, vllm = (results["variants"][name] for name in ("grpo", "sft-padding-free", "grpo-vllm"))
    assert results["parameters"] > 100_000 and results["bandwidth_bytes_per_second"] > 1e8
    assert grpo["steps"] == 1 and grpo["seconds_per_step"] > 0
    assert 0 < grpo["tokens_per_second"] < grpo["bound_tokens_per_second"]  # no run beats the bandwidth bound
    assert grpo["precision"]["master"] == "float32"  # what the bound assumed each decoding step reads
    assert grpo["peak_rss_gib"] > 0.1 and grpo["estimate_gib"] > 0.1  # the memory the run logged, the estimate
    assert sft["tokens_per_second"] > 0 and "estimate_gib" not in sft  # padding-free SFT trains on the tiny model
    assert vllm == {"skipped": "needs a GPU"}
    lines = done.stdout.splitlines()
    assert any(line.startswith("grpo ") and "completion tokens/s; bound" in line for line in lines)
    assert any(line.startswith("sft-padding-free ") and "trained tokens/s" in line for line in lines)
    assert any(line.startswith("grpo-vllm ") and line.endswith("skipped: needs a GPU") for line in lines)
