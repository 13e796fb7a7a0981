"""Local data files read with the standard library: the first rows, the shape of the rows, and the line a
malformed file breaks at.

``recipe validate`` reads local files here, without ``datasets`` (slow to import, and its JSON
errors run to a hundred lines), so a wrong column, a gold of the wrong type or a broken JSONL line
stops the run before any weights load. Training still reads the file through ``datasets``;
``locate_bad_line`` turns its parse error into the same one-line message.
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
    Parquet rows from 0. A line that is not a JSON object raises a one-line ``RecipeError``.
    """
    suffix = path.suffix
    if suffix == ".jsonl" or (suffix == ".json" and _looks_like_json_lines(path)):
        return _jsonl_rows(path, limit)
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
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
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for row in reader:
                rows.append((reader.line_num, dict(row)))
                if limit and len(rows) >= limit:
                    break
            return rows
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        rows = []
        for batch in table.iter_batches(batch_size=limit or 65536):
            rows += batch.to_pylist()
            if limit and len(rows) >= limit:
                break
        return list(enumerate(rows[:limit] if limit else rows))
    raise RecipeError(f"'{path}': use a .jsonl, .json, .parquet or .csv file")


def _looks_like_json_lines(path: Path) -> bool:
    """A .json file holding one object per line (datasets reads both forms)."""
    with path.open() as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def _jsonl_rows(path: Path, limit: int | None) -> list[tuple[int, dict]]:
    rows = []
    with path.open() as handle:
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


def locate_bad_line(path: Path) -> RecipeError | None:
    """The one-line error for the first malformed line of a JSON-lines file, or None when every line parses."""
    if path.suffix not in (".jsonl", ".json") or not _looks_like_json_lines(path):
        return None
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
    TRL's formats (``recipe_cli.data.trl_formats``): a ``messages`` conversation, a ``prompt`` with
    a ``completion``, or a ``text`` column alone.

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
    if all(isinstance(r.get("messages"), list) for r in rows):
        return "messages"
    if all("prompt" in r and "completion" in r for r in rows):
        return "prompt_completion"
    if all(set(r) == {"text"} for r in rows):
        return "text"
    return None
