# Each target is a one-line alias of what the README shows; the logic lives in the package and scripts/.
PYTHON ?= python3

.PHONY: install test demo ablation lint validate help
help:
	@echo "make demo     run the offline demo: base -> SFT -> GRPO -> eval on a tiny model (~6-7 min, CPU)"
	@echo "make test     run the test suite (offline, CPU, a few minutes)"
	@echo "make ablation the demo's GRPO under several divergences to the reference model, one table (~25 min)"
	@echo "make install  install recipe and its tested dependencies (CPU torch first without a GPU)"
	@echo "make lint     ruff"

install: .install.stamp
.install.stamp: pyproject.toml constraints.txt scripts/install.sh
	PYTHON=$(PYTHON) scripts/install.sh && touch .install.stamp

test: install
	$(PYTHON) -m pytest

demo: install
	$(PYTHON) -m recipe_cli run recipes/demo.yaml --overwrite && $(PYTHON) scripts/check_demo.py runs/demo

ablation: install
	$(PYTHON) scripts/ablate_divergence.py recipes/demo.yaml --set eval.num_samples=8

validate: install
	$(PYTHON) -m recipe_cli validate recipes/gsm8k.yaml

lint: install
	$(PYTHON) -m ruff check recipe_cli tests scripts && $(PYTHON) -m ruff format --check recipe_cli tests scripts
