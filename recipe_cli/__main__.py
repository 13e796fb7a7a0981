"""``python -m recipe_cli`` runs the ``recipe`` command line."""

from recipe_cli.cli import app

app(prog_name="recipe")
