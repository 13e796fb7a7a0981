"""The errors the CLI turns into a one-line message: user mistakes (exit code 2) and stopped training runs."""


class RecipeError(Exception):
    """A mistake the user can fix (bad recipe, missing file, impossible settings); the message says how."""


class TrainingStopped(Exception):
    """Training stopped before the end (a preemption signal, a NaN loss); the message says what was kept."""

    def __init__(self, message: str, exit_code: int, *, resumable: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        self.resumable = resumable  # the CLI adds the command that continues the run
