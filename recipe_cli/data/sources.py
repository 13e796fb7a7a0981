"""Reading a stage's sources: a Hub dataset, a local file or generated problems, through their adapters.

Shuffling and mixture weights act on a source's raw rows (``datasets`` shuffles an index, so a
large Hub dataset is never copied); the adapter then normalises the rows lazily, so a stage that
needs its first ``max_samples`` rows reads no more than that.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from recipe_cli.config import LOCAL_DATA_SUFFIXES, DatasetSettings, SourceSettings, is_local_path
from recipe_cli.data import columns, gsm8k, openthoughts, trl_formats  # noqa: F401  (each registers its adapter)
from recipe_cli.data.adapters import ADAPTERS, RawRows, missing_gold
from recipe_cli.data.files import CHECK_ROWS, FULL_CHECK_BYTES, locate_problem, read_rows
from recipe_cli.errors import RecipeError
from recipe_cli.synthetic import generate_problems

_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def load_raw(settings: SourceSettings):
    """The source rows as a ``datasets.Dataset`` (Hub id, local folder, or local JSON/JSONL/Parquet/CSV file)."""
    import datasets

    path = settings.path
    if is_local_path(path):
        path = str(Path(path).expanduser())  # datasets would take `~/data.jsonl` for a Hub id
    local_file = is_local_path(path) and Path(path).is_file()
    try:
        if local_file:
            builder = _BUILDERS.get(Path(path).suffix)
            if builder is None:
                raise RecipeError(f"dataset '{path}': use a {'/'.join(LOCAL_DATA_SUFFIXES)} file")
            if Path(path).stat().st_size == 0:  # datasets' JSON builder fails on it with a bare StopIteration
                raise RecipeError(f"dataset '{path}' is an empty file; point `path` at a file with rows")
            files = {name: path for name in split_names(settings.split)}  # the file is each split the spec names
            cells = _csv_as_text(Path(path)) if builder == "csv" else {}
            return datasets.load_dataset(builder, data_files=files, split=settings.split, **cells)
        saved = _saved_splits(Path(path), settings.split) if is_local_path(path) else None
        if saved is not None:
            return datasets.load_dataset("arrow", data_files=saved, split=settings.split)
        return datasets.load_dataset(path, settings.config, split=settings.split)
    except RecipeError:
        raise
    except Exception as error:
        # datasets' own message for a broken file runs to a hundred lines, or names a pyarrow internal
        problem = locate_problem(Path(path)) if local_file else None
        if problem is not None:
            raise problem from None
        mistake = _load_error(settings, error)
        if mistake is error:
            raise
        raise mistake from error


def _saved_splits(folder: Path, split: str) -> dict[str, list[str]] | None:
    """The Arrow files of a folder ``datasets``' ``save_to_disk`` wrote, by split; None for any other folder.

    ``load_dataset`` refuses a saved ``Dataset`` and guesses a ``DatasetDict``'s splits from its
    folder names (``train_sft`` read as ``train``). A ``DatasetDict`` names its splits in
    ``dataset_dict.json``; a ``Dataset`` saved alone is each split the spec names, as a local file is.
    A ``state.json`` or ``dataset_dict.json`` that does not hold what ``save_to_disk`` writes is another
    tool's: the folder is then loaded as any other.
    """

    def arrow_files(part: Path) -> list[str]:
        return [str(part / entry["filename"]) for entry in json.loads((part / "state.json").read_text())["_data_files"]]

    try:
        if (folder / "dataset_dict.json").is_file():
            splits = json.loads((folder / "dataset_dict.json").read_text())["splits"]
            return {name: arrow_files(folder / name) for name in splits}
        if (folder / "state.json").is_file():
            return {name: arrow_files(folder) for name in split_names(split)}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def _csv_as_text(path: Path) -> dict:
    """``load_dataset`` arguments that read every CSV cell as the text the file holds, as ``recipe validate`` does:
    datasets would guess each column's type (``007`` -> 7, ``2`` -> 2.0 in a column with a ``0.5``, a 20-digit
    answer -> 1.2e+19) and read ``NA``, ``None`` and empty cells as null."""
    import datasets

    with path.open(newline="", encoding="utf-8-sig") as handle:  # Excel writes a BOM
        header = next(csv.reader(handle), [])
    return {"features": datasets.Features({name: datasets.Value("string") for name in header}), "na_filter": False}


def split_names(split: str) -> list[str]:
    """The split names in a split spec, which may slice them (``datasets``' syntax).

    >>> split_names("train"), split_names("train[:1000]"), split_names("train[:10%] + test[-5:]")
    (['train'], ['train'], ['train', 'test'])
    """
    return list(dict.fromkeys(part.split("[")[0].strip() for part in split.split("+")))


def _load_error(settings: SourceSettings, error: Exception) -> Exception:
    """The one-line error for a dataset ``datasets`` could not load, or ``error`` itself when it is a bug."""
    path, split = settings.path, settings.split
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, ValueError) and "[" in split and re.search(r"instruction|slice", first_line, re.IGNORECASE):
        return RecipeError(
            f"dataset '{path}': split '{split}' cannot be read ({first_line}); slice a split as "
            "`train[:1000]`, `train[-500:]` or `train[:10%]`, within its rows"
        )
    if isinstance(error, ValueError) and first_line.startswith("BuilderConfig"):  # a config the dataset lacks
        return RecipeError(f"dataset '{path}' has no config '{settings.config}' ({first_line}); set `config` to one")
    configs = re.search(r"available configs: (\[.*\])", str(error))
    if isinstance(error, ValueError) and first_line.startswith("Config name is missing") and configs:
        return RecipeError(f"dataset '{path}' has several configs, {configs.group(1)}; set `config` to one of them")
    if type(error).__name__ == "DatasetGenerationError" and is_local_path(path):
        cause = error.__cause__ or error
        return RecipeError(f"dataset '{path}' could not be parsed: {str(cause).splitlines()[0]}")
    if isinstance(error, ValueError) and "split" in str(error).lower():
        return RecipeError(f"dataset '{path}' has no split '{split}': {first_line}")
    library = isinstance(error, (ValueError, OSError)) or type(error).__module__.startswith("datasets")
    if library and is_local_path(path) and Path(path).expanduser().is_dir():  # no Hub id, no network involved
        return RecipeError(
            f"dataset '{path}' is a folder that could not be loaded ({type(error).__name__}: {first_line}); point "
            f"`path` at a {'/'.join(LOCAL_DATA_SUFFIXES)} file, a folder holding such files, or one "
            "`save_to_disk` wrote"
        )
    if isinstance(error, ValueError):
        return RecipeError(f"dataset '{path}' could not be read: {first_line}")
    if isinstance(error, (FileNotFoundError, ConnectionError, OSError)):
        return RecipeError(
            f"dataset '{path}' could not be loaded ({type(error).__name__}: {first_line}); "
            "check the id and your network, or point `path` at a local file"
        )
    if type(error).__name__ in ("DatasetNotFoundError", "DataFilesNotFoundError", "HfHubHTTPError"):
        return RecipeError(f"dataset '{path}' could not be loaded: {first_line}")
    return error


class Counted:
    """An iterable that counts the items taken from it (rows read from a source, for the chain's report), and
    the rows the adapter left out of them by reason (``RawRows.skip``)."""

    def __init__(self, items):
        self.items, self.count = items, 0
        self.skipped: dict[str, int] = {}

    def __iter__(self):
        for item in self.items:
            self.count += 1
            yield item


def iter_source(source: SourceSettings, seed: int, *, shuffle: bool = False, weight: float = 1.0, counter=None):
    """One source's normalised rows, lazily; ``shuffle`` (seeded) and ``weight`` (the seeded share kept) act on
    the raw rows first. ``counter`` (a ``Counted``) receives the raw rows as they are read, and the reasons the
    adapter skipped rows."""
    if source.adapter == "arithmetic":  # generates exactly max_samples problems
        rows = generate_problems(source.split, source.max_samples, seed, teacher_error_rate=source.teacher_error_rate)
        if shuffle or weight < 1.0:
            random.Random(seed).shuffle(rows)
        rows = rows[: _kept(len(rows), weight)]
        yield from _counting(rows, counter)
        return
    raw = load_raw(source)
    if shuffle or weight < 1.0:
        raw = raw.shuffle(seed=seed)
    if weight < 1.0:
        raw = raw.select(range(_kept(len(raw), weight)))
    rows = RawRows(_counting(raw, counter), raw.column_names, source.path)
    if counter is not None:
        rows.skipped = counter.skipped
    yield from ADAPTERS[source.adapter](rows, source)


def _counting(rows, counter):
    if counter is None:
        return rows
    counter.items = rows
    return counter


def _kept(size: int, weight: float) -> int:
    """Rows a mixture weight keeps of a source, as open-r1 (``int(len * weight)``), at least one.

    >>> _kept(7473, 0.5), _kept(3, 0.1)
    (3736, 1)
    """
    return max(1, int(size * weight)) if weight < 1.0 else size


def iter_examples(settings: DatasetSettings | SourceSettings, seed: int, counter=None) -> Iterator[dict]:
    """Every normalised row of a dataset section (a mixture's sources one after the other), read lazily.

    With ``shuffle`` the rows come in a seeded order (a mixture's are shuffled together); a mixture's
    source gives at most its own ``max_samples`` usable rows (of its ``weight`` share). The section's
    ``max_samples`` and the other steps are the chain's to apply (``recipe_cli.data.chain``).
    """
    mixture = getattr(settings, "mixture", None)
    shuffle = getattr(settings, "shuffle", False)
    if mixture is None:
        yield from iter_source(settings, seed, shuffle=shuffle, counter=counter)
        return
    rows = []
    read = 0
    skipped: dict[str, int] = {}
    for index, source in enumerate(mixture):
        counted = Counted(None)
        source_rows = iter_source(source, seed, weight=source.weight, counter=counted)
        rows += [dict(row, source=index) for row in itertools.islice(source_rows, source.max_samples)]
        read += counted.count
        for reason, count in counted.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
    if shuffle:
        random.Random(seed).shuffle(rows)
    if counter is not None:
        counter.count = read
        counter.skipped.update(skipped)
    yield from rows


def load_examples(settings: DatasetSettings | SourceSettings, seed: int) -> list[dict]:
    """The first ``max_samples`` normalised rows of a dataset section (every row without it)."""
    rows = list(itertools.islice(iter_examples(settings, seed), settings.max_samples))
    if not rows:
        raise no_rows(settings)
    return rows


def no_rows(settings: SourceSettings) -> RecipeError:
    name = settings.path or ("the mixture" if getattr(settings, "mixture", None) else "generated problems")
    return RecipeError(f"dataset '{name}' (split {settings.split}) has no usable rows")


def check_local_source(source: SourceSettings, where: str = "") -> str | None:
    """What is wrong with a local file's rows for its adapter (columns, the gold's type, a broken line), or None.

    Reads every row of files up to 64 MiB and the first 1000 beyond (training reads the rest), with the
    standard library, and runs the adapter over them: ``recipe validate`` finds what training would.
    ``where`` (``grpo.dataset``, ``eval.datasets.1``...) says whether the rows need a gold answer.
    """
    path = Path(source.path).expanduser()
    if not path.is_file() or source.adapter not in ADAPTERS:
        return None
    if path.stat().st_size == 0:
        return f"dataset '{source.path}' is an empty file; point `path` at a file with rows"
    limit = None if path.stat().st_size <= FULL_CHECK_BYTES else CHECK_ROWS
    try:
        numbered = read_rows(path, limit)
        if not numbered:
            return f"dataset '{source.path}' has no rows; point `path` at a file with rows"
        rows = [row for _, row in numbered]
        names = list(dict.fromkeys(key for row in rows for key in row))
        lines = [line for line, _ in numbered] if path.suffix in (".jsonl", ".json", ".csv") else []
        raw = RawRows([{name: row.get(name) for name in names} for row in rows], names, source.path, lines)
        adapted = list(ADAPTERS[source.adapter](raw, source))  # every row, not just the first
        if not adapted:
            return f"dataset '{source.path}' has no row the {source.adapter} adapter can use"
        no_gold = missing_gold(where, adapted) if where.startswith(("grpo.", "eval.")) else None
        if no_gold is not None:
            return str(no_gold).removeprefix(f"{where}: ")
    except RecipeError as error:
        return str(error)
    return None
