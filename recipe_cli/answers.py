"""The answer checker: pull the final answer out of a completion and compare it with the gold.

One checker serves the ``accuracy`` reward and ``recipe eval``, so the number a run reports is
the number it trained on. Plain numbers (GSM8K golds) are compared exactly as fractions and
never touch sympy; LaTeX answers go through math-verify in a worker process, each comparison
bounded in time (``python -m recipe_cli.answers --serve`` is that worker).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
HASHES = re.compile(r"####\s*([^\n]*)")
ANSWER_IS = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|^\s*(?:final\s+)?answer\s*:|^\s*A\s*:)\s*([^\n]*)", re.I | re.M
)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
PLAIN_NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$")
# Words and symbols around a number that do not change its value: "$1,000.", "50 %", "12 apples".
NUMBER_DECORATION = re.compile(r"^[\s$€£]*|[\s.%]*$|\\[%$]|\\text\{[^}]*\}|\\!|\\,")
FRACTION = re.compile(r"^(-?\d+)\s*/\s*(\d+)$")
LATEX_FRACTION = re.compile(r"^(-?)\\d?frac\{(-?\d+)\}\{(\d+)\}$")

log = logging.getLogger(__name__)


def find_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` (or ``\fbox{...}``), nested braces included.

    >>> find_boxed(r"so \boxed{\frac{1}{2}} is it")
    '\\frac{1}{2}'
    >>> find_boxed("no box") is None
    True
    """
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    r"""The final answer a completion gives, as written, or None when it gives none.

    Looked for in this order: the last ``<answer>`` tag, the last ``\boxed{}``, ``####``,
    "the answer is ...", "Answer: ..." / "A: ...", and finally the last number in the text.

    >>> extract_answer("<think>2+2=4</think><answer>4</answer>")
    '4'
    >>> extract_answer("so 3 + 4 = 7. #### 7")
    '7'
    >>> extract_answer("The answer is $1,000.")
    '$1,000.'
    >>> extract_answer("no digits here") is None
    True
    """
    tags = ANSWER_TAG.findall(text)
    if tags and tags[-1].strip():
        inner = tags[-1].strip()
        return find_boxed(inner) or inner
    boxed = find_boxed(text)
    if boxed is not None:
        return boxed.strip()
    for pattern in (HASHES, ANSWER_IS):
        found = pattern.findall(text)
        if found and found[-1].strip():
            return found[-1].strip()
    numbers = NUMBER.findall(text)
    return numbers[-1] if numbers else None


def parse_number(text: str) -> Fraction | None:
    """The exact value of a plainly written number, or None when ``text`` is not one.

    >>> parse_number("1,000.00") == parse_number("1000")
    True
    >>> parse_number("$18.") , parse_number("-3/4"), parse_number("50%")
    (Fraction(18, 1), Fraction(-3, 4), Fraction(50, 1))
    >>> parse_number("12 apples")
    Fraction(12, 1)
    >>> parse_number("x + 1") is None
    True
    """
    cleaned = NUMBER_DECORATION.sub("", text.strip())
    cleaned = re.sub(r"\s+[A-Za-z]+(?:\s+[A-Za-z]+)*$", "", cleaned)  # trailing unit words
    cleaned = cleaned.strip().rstrip(".").strip()
    if cleaned.startswith("+"):
        cleaned = cleaned[1:]
    if cleaned and PLAIN_NUMBER.match(cleaned) and any(c.isdigit() for c in cleaned):
        return Fraction(cleaned.replace(",", ""))
    match = FRACTION.match(cleaned) or LATEX_FRACTION.match(cleaned)
    if match:
        sign, numerator, denominator = ("", *match.groups()) if len(match.groups()) == 2 else match.groups()
        if int(denominator) == 0:
            return None
        return Fraction(int(sign + numerator) if sign else int(numerator), int(denominator))
    return None


LATEX_TIMEOUT_SECONDS = 5.0  # per comparison; sympy can spend hours on e.g. 9^{9^{9^9}}


class _LatexJudges:
    """A small pool of worker processes that run math-verify, each comparison bounded in time.

    math-verify's own timeouts use ``signal.alarm``: they only work on the main thread (TRL may
    call rewards from others) and cannot interrupt sympy while it is inside one long integer
    operation. A worker process can always be killed, so a pathological answer costs at most the
    time bound and then counts as wrong. Workers are plain subprocesses speaking JSON lines, so no
    fork of a threaded parent and no re-import of the parent's ``__main__``.
    """

    def __init__(self, size: int):
        self.size = size
        self.idle: list[subprocess.Popen] = []
        self.started = 0
        self.lock = threading.Condition()
        atexit.register(self.close)

    def _spawn(self) -> subprocess.Popen:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        worker = subprocess.Popen(
            [sys.executable, "-m", "recipe_cli.answers", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
        )
        if _read_line(worker, 120.0) != "ready":  # importing sympy takes a second or two; not part of the bound
            self._kill(worker)
            raise RuntimeError("the math-verify worker process did not start")
        return worker

    def _acquire(self) -> subprocess.Popen:
        with self.lock:
            while not self.idle and self.started >= self.size:
                self.lock.wait()
            if self.idle:
                return self.idle.pop()
            self.started += 1
        try:
            return self._spawn()
        except BaseException:
            self._release(None)
            raise

    def _release(self, worker: subprocess.Popen | None) -> None:
        with self.lock:
            if worker is None:
                self.started -= 1
            else:
                self.idle.append(worker)
            self.lock.notify()

    def _kill(self, worker: subprocess.Popen) -> None:
        worker.kill()
        worker.wait()

    def compare(self, gold: str, answer: str, timeout: float) -> bool | None:
        """math-verify's verdict on ``answer`` against ``gold``; False when it takes longer than ``timeout``."""
        worker = self._acquire()
        try:
            worker.stdin.write(json.dumps([gold, answer]) + "\n")
            worker.stdin.flush()
            reply = _read_line(worker, timeout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:  # too slow or dead: this worker is done for
            self._kill(worker)
            self._release(None)
            log.warning("answer check stopped after %.1f s, counted as wrong: %.80s", timeout, answer)
            return False
        self._release(worker)
        return json.loads(reply)

    def close(self) -> None:
        with self.lock:
            for worker in self.idle:
                worker.stdin.close()
                self._kill(worker)
            self.idle.clear()


def _read_line(worker: subprocess.Popen, timeout: float) -> str | None:
    """One line from a worker within ``timeout`` seconds, or None."""
    ready, _, _ = select.select([worker.stdout], [], [], timeout)
    if not ready:
        return None
    line = worker.stdout.readline()
    return line.strip() if line else None


_judges = _LatexJudges(size=min(4, os.cpu_count() or 1))


@functools.lru_cache(maxsize=65536)
def _math_verify(gold: str, answer: str, timeout: float) -> bool | None:
    """LaTeX comparison through math-verify in a worker process; None when the gold cannot be parsed."""
    return _judges.compare(gold, answer, timeout)


def _verify_in_worker(gold: str, answer: str) -> bool | None:
    from math_verify import parse, verify

    gold_parsed = parse(_as_latex(gold))
    if not gold_parsed:
        return None
    answer_parsed = parse(_as_latex(answer))
    if not answer_parsed:
        return False
    return bool(verify(gold_parsed, answer_parsed))


def _serve() -> None:
    """The worker loop: ``[gold, answer]`` per line in, a JSON verdict per line out."""
    import math_verify  # noqa: F401 - imported before "ready" so start-up is not charged to a comparison

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        gold, answer = json.loads(line)
        try:
            verdict = _verify_in_worker(gold, answer)
        except Exception:  # a parse or sympy failure is a wrong answer, not a dead worker
            verdict = False
        sys.stdout.write(json.dumps(verdict) + "\n")
        sys.stdout.flush()


def _as_latex(text: str) -> str:
    text = text.strip()
    if "\\boxed" in text or text.startswith("$"):
        return text
    return f"${text}$"


def check_answer(completion_answer: str | None, gold: str, timeout: float = LATEX_TIMEOUT_SECONDS) -> bool | None:
    """Whether an extracted answer equals the gold; None when the gold itself cannot be read.

    Plain numbers are compared exactly here; anything else goes to math-verify in a worker
    process and counts as wrong when it takes longer than ``timeout`` seconds.

    >>> check_answer("1,000", "1000"), check_answer("999", "1000"), check_answer(None, "5")
    (True, False, False)
    """
    gold = str(gold).strip()
    gold_number = parse_number(gold)
    if completion_answer is None:
        return False if gold_number is not None or gold else None
    if gold_number is not None:
        value = answer_value(completion_answer)
        if value is not None:
            return value == gold_number
    if not gold:
        return None
    return _math_verify(gold, completion_answer, timeout)


def answer_value(answer: str) -> Fraction | None:
    """The number an extracted answer stands for: its exact value, else the last number of plain text.

    LaTeX is left to math-verify (None here), so ``2^{10}`` is not read as 10.

    >>> answer_value("1,000.00"), answer_value("x = 12"), answer_value("2^{10}")
    (Fraction(1000, 1), Fraction(12, 1), None)
    """
    number = parse_number(answer)
    if number is not None or _looks_like_latex(answer):
        return number
    numbers = NUMBER.findall(answer)
    return parse_number(numbers[-1]) if numbers else None


def _looks_like_latex(text: str) -> bool:
    return "\\" in text or "^" in text or "{" in text


def score_completion(
    completion: str, gold: str, timeout: float = LATEX_TIMEOUT_SECONDS
) -> tuple[str | None, bool | None]:
    """Extract the answer from a completion and check it: ``(extracted, correct)``."""
    extracted = extract_answer(completion)
    return extracted, check_answer(extracted, gold, timeout)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
