"""recipe: the DeepSeek-R1 training recipe (cold-start SFT -> GRPO -> eval -> push) from one YAML file."""

__version__ = "0.1.0"
