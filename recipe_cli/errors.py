"""The one error type for user mistakes: the CLI prints it as one line and exits with code 2."""


class RecipeError(Exception):
    """A mistake the user can fix (bad recipe, missing file, impossible settings); the message says how."""
