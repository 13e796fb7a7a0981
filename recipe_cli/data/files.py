"""Local data files read with the standard library: the first rows, the shape of the rows, and the line a
malformed file breaks at.

``recipe validate`` reads local files here, without ``datasets`` (slow to import, and its JSON
errors run to a hundred lines), so a wrong column, a gold of the wrong type, a broken JSONL line, a
file that is not UTF-8 or a ``.parquet`` file that is not Parquet stops the run before any weights
load. Training still reads the file through ``datasets``; ``locate_problem`` turns its error into
the same one-line message.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from recipe_cli.errors import RecipeError

HEAD_ROWS = 20  # rows read to infer an adapter
FULL_CHECK_BYTES = 64 * 2**20  # validate checks every row of a file up to this size, the first CHECK_ROWS beyond
CHECK_ROWS = 1000
THOUGHT_MARKER = "<|begin_of_thought|>"  # OpenThoughts' R1 traces open with it


def read_rows(path: Path, limit: int | None = None) -> list[tuple[int, dict]]:
    """``(line or row number, row)`` of a local .jsonl/.json/.csv/.parquet file, the first ``limit`` rows.

    JSONL and CSV rows are numbered by their line in the file (1 = the first line), JSON and
    Parquet rows from 0. A line that is not a JSON object, text that is not UTF-8 and a Parquet file
    that does not parse raise a one-line ``RecipeError``.
    """
    if path.suffix == ".parquet":
        return _parquet_rows(path, limit)
    if path.suffix == ".arrow":
        return _arrow_rows(path, limit)
    try:
        return _text_rows(path, limit)
    except UnicodeDecodeError:
        raise (_not_utf8(path) or RecipeError(f"'{path}' is not UTF-8 text; re-save it as UTF-8")) from None


def _text_rows(path: Path, limit: int | None) -> list[tuple[int, dict]]:
    suffix = path.suffix
    if suffix == ".jsonl" or (suffix == ".json" and _looks_like_json_lines(path)):
        return _jsonl_rows(path, limit)
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as error:
            raise RecipeError(
                f"'{path}' is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
                "fix the file there, or write one JSON object per line (.jsonl)"
            ) from None
        rows = data if isinstance(data, list) else None
        if rows is None or not all(isinstance(row, dict) for row in rows):
            raise RecipeError(f"'{path}' holds no list of JSON objects; write one object per row (or use .jsonl)")
        return list(enumerate(rows[:limit] if limit else rows))
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:  # Excel writes a BOM
            reader = csv.DictReader(handle)
            twice = sorted({name for name in reader.fieldnames or [] if reader.fieldnames.count(name) > 1})
            if twice:  # the csv module keeps the last of them, datasets the first
                raise RecipeError(f"'{path}' has two columns named {twice[0]!r}; rename one in the header line")
            rows = []
            for row in reader:
                rows.append((reader.line_num, dict(row)))
                if limit and len(rows) >= limit:
                    break
            return rows
    raise RecipeError(f"'{path}': use a .jsonl, .json, .parquet or .csv file")


def _parquet_rows(path: Path, limit: int | None) -> list[tuple[int, dict]]:
    import pyarrow
    import pyarrow.parquet as pq

    rows = []
    try:
        table = pq.ParquetFile(path)
        for batch in table.iter_batches(batch_size=limit or 65536):
            rows += batch.to_pylist()
            if limit and len(rows) >= limit:
                break
    except (pyarrow.ArrowException, OSError) as error:  # ArrowInvalid: not Parquet; OSError: cut off, unreadable
        raise _not_parquet(path, error) from None
    return list(enumerate(rows[:limit] if limit else rows))


def _arrow_rows(path: Path, limit: int | None) -> list[tuple[int, dict]]:
    """The rows of an Arrow stream file, as ``datasets``' ``save_to_disk`` writes them."""
    import pyarrow
    import pyarrow.ipc

    rows = []
    try:
        with pyarrow.OSFile(str(path)) as source:
            for batch in pyarrow.ipc.open_stream(source):
                rows += batch.to_pylist()
                if limit and len(rows) >= limit:
                    break
    except (pyarrow.ArrowException, OSError) as error:
        raise RecipeError(f"'{path}' is not an Arrow stream file, or it is cut off ({error})") from None
    return list(enumerate(rows[:limit] if limit else rows))


def first_data_file(folder: Path, config: str | None = None) -> Path | None:
    """The first data file of a local dataset folder, in name order: a Hub snapshot's (under the ``config``'s
    folder when there is one; not ``hf download``'s ``.cache``) or ``save_to_disk``'s Arrow files; None if none.

    Its rows tell the adapter, as a local file's do: the snapshot's rows are the Hub dataset's.
    """
    root = folder / config if config and (folder / config).is_dir() else folder
    found = [
        path
        for path in root.rglob("*")
        if path.suffix in (".parquet", ".jsonl", ".json", ".csv", ".arrow")
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and path.name not in ("dataset_info.json", "state.json", "dataset_dict.json")  # save_to_disk's own
    ]
    return min(found, default=None)


def _not_parquet(path: Path, error: Exception) -> RecipeError:
    reason = str(error).splitlines()[0].split(". ")[0].rstrip(".") if str(error) else type(error).__name__
    return RecipeError(
        f"'{path}' is not a parquet file, or it is cut off ({reason}); re-save it as Parquet (pandas' `to_parquet`), "
        "or save the rows as .jsonl and point `path` at that"
    )


def _not_utf8(path: Path) -> RecipeError | None:
    """The one-line error for the first bytes of ``path`` that are not UTF-8 (line and byte offset), or None.

    Reads the file line by line in binary: a newline byte never occurs inside a UTF-8 sequence, so
    each line decodes on its own.
    """
    offset = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return RecipeError(
                    f"'{path}' is not UTF-8 text: line {number} (byte {offset + error.start}) holds "
                    f"{line[error.start : error.start + 1]!r}, {error.reason}; re-save the file as UTF-8 "
                    "(e.g. `iconv -f latin1 -t utf-8`)"
                )
            offset += len(line)
    return None


def _looks_like_json_lines(path: Path) -> bool:
    """A .json file holding one object per line (datasets reads both forms)."""
    with path.open(encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def _jsonl_rows(path: Path, limit: int | None) -> list[tuple[int, dict]]:
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise RecipeError(_bad_line(path, number, error.msg)) from None
            if not isinstance(row, dict):
                raise RecipeError(_bad_line(path, number, f"a JSON {type(row).__name__}, not an object"))
            rows.append((number, row))
            if limit and len(rows) >= limit:
                break
    return rows


def _bad_line(path: Path, number: int, problem: str) -> str:
    return (
        f"'{path}' line {number} is not a JSON object ({problem}); fix or delete that line "
        "(a .jsonl file holds one JSON object per line)"
    )


def locate_problem(path: Path) -> RecipeError | None:
    """The one-line error for a local data file ``datasets`` could not read: text that is not UTF-8, a Parquet
    file that does not parse, the first malformed line of a JSON-lines file; None when none of these is found."""
    if path.suffix == ".parquet":
        try:
            _parquet_rows(path, None)
        except RecipeError as error:
            return error
        return None
    problem = _not_utf8(path)
    if problem is not None or path.suffix not in (".jsonl", ".json") or not _looks_like_json_lines(path):
        return problem
    try:
        _jsonl_rows(path, None)
    except RecipeError as error:
        return error
    return None


def read_head(path: Path) -> list[dict]:
    """The first rows of a local file (for inferring its adapter)."""
    return [row for _, row in read_rows(path, HEAD_ROWS)]


def infer_adapter(rows: list[dict]) -> str | None:
    """``gsm8k``, ``openthoughts`` or one of TRL's formats when the rows have that shape, else None.

    GSM8K: ``question`` and a text ``answer`` ending in ``#### <number>``. OpenThoughts: ``problem``
    and ``conversations`` or ``messages`` holding the begin_of_thought/begin_of_solution markers.
    TRL's formats (``recipe_cli.data.trl_formats``): a ``messages`` (or ``conversations``) conversation,
    a ``prompt`` with a ``completion`` (or a ``prompt`` conversation alone), or a ``text`` column alone.

    >>> infer_adapter([{"question": "2+2?", "answer": "2+2=4\\n#### 4"}])
    'gsm8k'
    >>> infer_adapter([{"question": "2+2?", "answer": "4"}]) is None
    True
    >>> infer_adapter([{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}])
    'messages'
    """
    if not rows:
        return None
    if all(isinstance(r.get("question"), str) and "####" in str(r.get("answer", "")) for r in rows):
        return "gsm8k"
    turns = [json.dumps(r.get("conversations") or r.get("messages") or "", ensure_ascii=False) for r in rows]
    if all("problem" in r for r in rows) and any(THOUGHT_MARKER in text for text in turns):
        return "openthoughts"
    conversation = "messages" if any("messages" in r for r in rows) else "conversations"  # TRL reads either
    if all(isinstance(r.get(conversation), list) for r in rows):
        return "messages"
    if all("prompt" in r and "completion" in r for r in rows) or all(isinstance(r.get("prompt"), list) for r in rows):
        return "prompt_completion"  # or TRL's conversational prompt-only rows (GRPO's), a `prompt` of turns
    if all(set(r) == {"text"} for r in rows):
        return "text"
    return None
