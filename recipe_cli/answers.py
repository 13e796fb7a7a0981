"""The answer checker: pull the final answer out of a completion and compare it with the gold.

One checker serves the ``accuracy`` reward and ``recipe eval``, so the number a run reports is
the number it trained on. Plain numbers (GSM8K golds) are compared exactly as fractions and
never touch sympy; other answers are read into their shape (interval, set, tuple, equation,
text, ratio, ... see ``recipe_cli.answer_forms``) and compared part by part, and the single
values left over go through math-verify in a worker process, each comparison bounded in time
(``python -m recipe_cli.answers --serve`` is that worker).
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
from typing import Literal

from recipe_cli.answer_forms import match_forms, parse_form, parse_number

Mode = Literal["strict", "flexible"]
# What each mode reads, as the eval tables, the report and the model card explain it (``extract_answer``)
MODE_LEGEND = "strict: the answer in <answer>, \\boxed{} or ####, not cut off; flexible: read anywhere, last number too"

ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)
HASHES = re.compile(r"####\s*([^\n]*)")
# Final-answer phrases; the last one in the text wins and the rest of its line is the answer.
# English, French, German, Spanish, Portuguese, Italian, Chinese, Japanese, Hindi, Arabic,
# Russian, Korean; "**Answer:**" too.
FINAL_ANSWER = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is\s*:?|^[\s*#>]*(?:final\s+)?answer\s*\**\s*[:：]|^\s*A\s*:"
    r"|la\s+réponse\s+(?:finale\s+)?est\s*:?|réponse(?:\s+finale)?\s*\**\s*[:：]"
    r"|die\s+(?:endgültige\s+)?antwort\s+(?:ist|lautet)\s*:?|antwort\s*\**\s*[:：]|ergebnis\s*\**\s*[:：]"
    r"|la\s+respuesta\s+(?:final\s+)?es\s*:?|respuesta(?:\s+final)?\s*\**\s*[:：]"
    r"|a\s+resposta\s+(?:final\s+)?é\s*:?|resposta(?:\s+final)?\s*\**\s*[:：]"
    r"|la\s+risposta\s+(?:finale\s+)?è\s*:?|risposta(?:\s+finale)?\s*\**\s*[:：]"
    r"|最终答案\s*(?:是|为)?\s*[:：]?|答案\s*(?:是|为)\s*[:：]?|答案\s*[:：]|^\s*答\s*[:：]"
    r"|答えは|答え\s*[:：]|解答\s*[:：]"
    r"|उत्तर\s*[:：]?"
    r"|الإجابة\s*(?:النهائية\s*)?(?:هي\s*)?[:：]?|الجواب\s*(?:هو\s*)?[:：]?"
    r"|ответ\s*(?:[:：]|—|-|равен)"
    r"|정답\s*[:：]|답\s*[:：]"
    r")\s*\**\s*([^\n]*)",
    re.I | re.M,
)
# U+2212 is the minus sign; thin and no-break spaces group digits (1 000 000), plain spaces separate numbers
# except in a mixed number (3 1/2); an exponent of three digits at most (1.5e3), as ``parse_number`` reads
NUMBER = re.compile(
    r"[-\u2212]?\d+ \d+/\d+(?![\d/])"
    r"|[-\u2212]?\d[\d,]*(?:[\u00a0\u2009\u202f]\d{3}(?!\d))*(?:\.\d+)?(?:[eE][-+]?\d{1,3}(?![\d.]))?(?:\s*/\s*\d+)?"
    r"|[-\u2212]?\.\d+"
)
# \( and \[ formulas hold no second opener: an unclosed one then stops at the next opener instead of searching
# the rest of the text for a closer, which took time quadratic in the length of a runaway completion.
MATH_SPAN = re.compile(
    r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\(((?:(?!\\\().)+?)\\\)|\\\[((?:(?!\\\[).)+?)\\\]",
    re.DOTALL,
)
BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Letters of scripts other than Latin, and CJK punctuation: the prose around the answer in
# "答：共有 36 个苹果。" or "अतः उत्तर 12 है।"; not those scripts' digits (१८, ١٨, １８ are 18).
NON_LATIN = re.compile(
    r"(?:(?!\d)[\u0400-\u04ff\u0600-\u06ff\u0900-\u097f\u3000-\u30ff\u3400-\u9fff\uac00-\ud7af\uff00-\uffef])+"
)
PROSE_WORD = re.compile(r"[A-Za-z]{3,}|\b[A-Z][a-z]+\b")
CONNECTOR = r"or|and|und|oder|et|ou|y|o|или|и|或|和"
# What may stand between the parts of one answer written in several boxes or formulas:
# "$\boxed{1}$, $\boxed{2}$ and $\boxed{3}$", "x = \boxed{-2} or x = \boxed{3}", "(a) \boxed{6} (b) \boxed{15}".
GAP_NOISE = re.compile(
    rf"\\text\{{\s*(?:{CONNECTOR})?\s*\}}|(?<![A-Za-z])(?:{CONNECTOR})(?![A-Za-z])|\$|\\[()\[\]]|\\q?quad|\\\\|&"
    r"|\(\s*[a-z0-9]\s*\)|\b[a-z0-9]\)|(?:[A-Za-z](?:_\{?\w+\}?)?|\([A-Za-z, ]+\))\s*=|[,;.\s]|\\[,;!]"
)
SIMPLE_EQUATION = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*([^=]+)$")
DECIMAL_COMMA = re.compile(r"^-?\d+,(?:\d{1,2}|\d{4,})$")
# The same with a currency sign or unit words around it, as prices are written there: 18,50 €, €18,50, 2,5 kg
DECIMAL_COMMA_AMOUNT = re.compile(r"^([$€£¥₹]?\s*-?\d+),(\d{1,2})((?:\s*[$€£¥₹]|\s+[^\W\d_]+)*)$")
ESCAPED_SIGN = re.compile(r"\\[$%]")  # Markdown's \$18 and 25\% in a sentence are prose, not LaTeX
PERCENT = re.compile(r"%|percent", re.I)
# A remark in brackets that offers another answer: "18 (or 20)"
HEDGE = re.compile(r"(?<![^\W\d_])(?:or|oder|ou|o|или|或)(?![^\W\d_]|['’])", re.I)  # not "o'clock"
# What may follow the "or" of a remark that restates the answer: an amount with at most two words of unit,
# "2 hours", "50 cents", "$0.5", "1/2", "50%"
RESTATED = re.compile(
    r"(?P<currency>[$€£¥₹]?)\s*(?P<number>-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)\s*"
    r"(?P<unit>%|¢|[^\W\d_]+(?: [^\W\d_]+)?)?\s*\.?"
)
# Text inside a formula, read as the words it holds when looking for a remark: 18 \text{ (or 20)}
TEXT_IN_FORMULA = re.compile(r"\\(?:text|textrm|mbox)\s*\{([^{}]*)\}")
# A unit spelt as a symbol or a word is one unit: "$18" and "18 dollars"
UNIT_NAMES = {"$": "dollar", "€": "euro", "£": "pound", "¥": "yen", "₹": "rupee", "¢": "cent", "%": "percent"}

log = logging.getLogger(__name__)


def find_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` (or ``\fbox{...}``), nested braces included.

    >>> find_boxed(r"so \boxed{\frac{1}{2}} is it")
    '\\frac{1}{2}'
    >>> find_boxed("no box") is None
    True
    """
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """Every outermost box as ``(start, end, content)``; an unclosed one ends the list."""
    boxes, position = [], 0
    while True:
        match = BOX.search(text, position)
        if match is None:
            return boxes
        depth = 1
        for j in range(match.end(), len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    boxes.append((match.start(), j + 1, text[match.end() : j]))
                    position = j + 1
                    break
        else:
            return boxes


def final_boxed(text: str) -> str | None:
    r"""The last box, with the boxes just before it that belong to the same answer, joined by commas.

    Boxes are one answer when only commas, "and" / "or", dollar signs, labels such as "(b)" or a
    variable's "x =" stand between them; the same box written twice counts once.

    >>> final_boxed(r"The solutions are $\boxed{1}$, $\boxed{2}$, and $\boxed{3}$.")
    '1, 2, 3'
    >>> final_boxed(r"First $a = \boxed{2}$ from the first equation; so the count is $\boxed{3}$.")
    '3'
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    parts = [boxes[-1][2].strip()]
    for (_, end, content), (start, _, _) in zip(reversed(boxes[:-1]), reversed(boxes[1:]), strict=True):
        if not _joins(text[end:start]):
            break
        parts.insert(0, content.strip())
    return ", ".join(dict.fromkeys(parts))


def _joins(gap: str) -> bool:
    return len(gap) <= 40 and not GAP_NOISE.sub("", gap)


def extract_answer(text: str, mode: Mode = "flexible") -> str | None:
    r"""The final answer a completion gives, as written, or None when it gives none.

    ``strict`` reads only the formats a recipe asks for: the last ``<answer>...</answer>``, else
    the last ``\boxed{}`` (with the boxes right before it: ``\boxed{1}, \boxed{2}``), else
    ``####``. ``flexible`` also reads an unclosed ``<answer>``, "the answer is ...", "Answer: ..."
    and its French, German, Spanish, Portuguese, Italian, Chinese, Japanese, Hindi, Arabic,
    Russian and Korean forms, then the last formula (``$...$``, ``\(...\)``, or a last line that
    is all LaTeX), and finally the last number in the text.

    >>> extract_answer("<think>2+2=4</think><answer>4</answer>")
    '4'
    >>> extract_answer("so 3 + 4 = 7. #### 7")
    '7'
    >>> extract_answer("The answer is $1,000.")
    '$1,000.'
    >>> extract_answer(r"\frac{10}{9}"), extract_answer("Ответ: 17"), extract_answer("no digits here")
    ('\\frac{10}{9}', '17', None)
    >>> extract_answer("She has 9 eggs, and 9 * 2 = 18"), extract_answer("She has 9 eggs, and 9 * 2 = 18", "strict")
    ('18', None)
    """
    tags = _closed_answer_tags(text) if mode == "strict" else ANSWER_TAG.findall(text)
    if tags and tags[-1].strip():
        inner = tags[-1].strip()
        return final_boxed(inner) or _after_marker(inner) or _answer_span(inner)
    boxed = final_boxed(text)
    if boxed is not None:
        return boxed
    hashes = HASHES.findall(text)
    after_hashes = hashes[-1].strip().strip("*").strip() if hashes else ""  # "#### **18**" is bold 18
    if after_hashes:
        return after_hashes
    if mode == "strict":
        return None
    return _after_marker(text) or _last_formula(text) or _last_number(text)


def _closed_answer_tags(text: str) -> list[str]:
    """The contents of the closed ``<answer>...</answer>`` tags, as ``re.findall(r"<answer>(.*?)</answer>")``
    finds them, in time linear in the text (the regex took quadratic time over many unclosed tags).

    >>> _closed_answer_tags("<answer>1</answer> <answer>2<answer>3</answer> <answer>4")
    ['1', '2<answer>3']
    """
    tags, position = [], 0
    while (start := text.find("<answer>", position)) >= 0:
        end = text.find("</answer>", start + len("<answer>"))
        if end < 0:
            break
        tags.append(text[start + len("<answer>") : end])
        position = end + len("</answer>")
    return tags


def _after_marker(text: str) -> str | None:
    """What follows the last final-answer phrase on its line."""
    found = [match for match in FINAL_ANSWER.findall(text) if match.strip()]
    return _answer_span(found[-1]) if found else None


def _answer_span(segment: str) -> str | None:
    """The answer in a final line: its formulas when it has any, else the line without other scripts' prose."""
    segment = segment.strip().strip("*").strip()
    spans = _math_spans(segment)
    if spans:
        parts = [spans[-1][2]]
        for (_, end, content), (start, _, _) in zip(reversed(spans[:-1]), reversed(spans[1:]), strict=True):
            if not _joins(segment[end:start]):
                break
            parts.insert(0, content)
        return ", ".join(parts)
    if NON_LATIN.search(segment):
        reduced = NON_LATIN.sub(" ", segment).strip(" .,:;!?*")
        if reduced.startswith("(") and reduced.endswith(")") and "," not in reduced:
            reduced = reduced[1:-1].strip()  # 每份应该是 (\frac{2}{5}) 吨
        return reduced or None
    return segment or None


def _math_spans(text: str) -> list[tuple[int, int, str]]:
    r"""The formulas of a text (``$...$``, ``$$...$$``, ``\(...\)``, ``\[...\]``) that hold math, not prose."""
    spans = []
    for match in MATH_SPAN.finditer(text):
        content = next(group for group in match.groups() if group is not None).strip()
        if content and _is_formula(content):
            spans.append((match.start(), match.end(), content))
    return spans


def _is_formula(text: str) -> bool:
    r"""Whether text reads as math: no words of prose outside ``\text{}`` and commands, no dangling operator.

    Two dollar signs of prices ("$5 for each and $6") enclose prose, not a formula.
    """
    bare = re.sub(r"\\text\{[^{}]*\}|\\[A-Za-z]+", " ", text)
    return not PROSE_WORD.search(bare) and not NON_LATIN.search(bare) and not bare.rstrip().endswith(("=", "+", "-"))


def _last_formula(text: str) -> str | None:
    """The last formula when no digit follows it, else a last line that is all LaTeX (``\\frac{10}{9}``)."""
    spans = _math_spans(text)
    if spans and not re.search(r"\d", text[spans[-1][1] :]):
        return spans[-1][2]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if lines and "$" not in lines[-1] and re.search(r"[\\^{]", lines[-1]) and _is_formula(lines[-1]):
        return lines[-1].rstrip(".").strip()
    return None


def _last_number(text: str) -> str | None:
    numbers = NUMBER.findall(text)
    return numbers[-1] if numbers else None


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


LATEX_WORKERS = min(4, os.cpu_count() or 1)  # math-verify worker processes at most
_judges = _LatexJudges(size=LATEX_WORKERS)


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
    # One comparison before "ready": math-verify and sympy load most of their parsing and simplification code on
    # first use (0.4-0.6 s), which would otherwise be charged to the first comparison of every fresh worker.
    _verify_in_worker("(x+1)^2", "x^2+2x+1")
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
    r"""Whether an extracted answer equals the gold; None when the gold itself cannot be read.

    Plain numbers are compared exactly here (``25%`` also matches ``0.25``); anything else is read
    into its shape and compared part by part, single values through math-verify in a worker
    process, each counted wrong when it takes longer than ``timeout`` seconds.

    >>> check_answer("1,000", "1000"), check_answer("999", "1000"), check_answer(None, "5")
    (True, False, False)
    >>> check_answer("[0, 9)", "(0, 9)"), check_answer("x \\in [-2, 7]", "[-2,7]"), check_answer("11 : 21", "11:21")
    (False, True, True)
    """
    gold = str(gold).strip()
    if "boxed" in gold or "fbox" in gold:  # a gold written as a full solution line: \boxed{[-2, 7]}
        gold = final_boxed(gold) or gold
    if not gold:
        return None
    if completion_answer is None:
        return False
    gold_number = parse_number(gold)
    if gold_number is not None:
        value = answer_value(completion_answer)
        if value is not None:
            if value == gold_number:
                return True
            if PERCENT.search(gold) and not PERCENT.search(completion_answer):
                return value == gold_number / 100
            return PERCENT.search(completion_answer) is not None and value / 100 == gold_number
        remark = split_remark(TEXT_IN_FORMULA.sub(r"\1", completion_answer))
        if remark is not None and offers_another(*remark):
            return False  # "18 (or 20)" gives two answers to a question with one
    gold_form, answer_form = parse_form(gold), parse_form(completion_answer)
    if gold_form is None:
        return None
    if answer_form is None:
        return False
    return match_forms(gold_form, answer_form, functools.partial(_equal_values, timeout=timeout))


def _equal_values(gold: str, answer: str, timeout: float) -> bool | None:
    return _math_verify(gold, answer, timeout)


def answer_value(answer: str) -> Fraction | None:
    """The number an extracted answer stands for, or None when it is not a number.

    A plain number, the right-hand side of ``x = 12``, or the last number of a sentence, each maybe
    followed by a remark in brackets (``18 (9×2)``). LaTeX and lists are left to the shape
    comparison, so ``2^{10}`` is not read as 10, nor ``1, 2, 3`` as 3.

    >>> answer_value("1,000.00"), answer_value("x = 12"), answer_value("She has 18 apples"), answer_value("2^{10}")
    (Fraction(1000, 1), Fraction(12, 1), Fraction(18, 1), None)
    >>> answer_value(r"Janet makes \\$18 every day.")
    Fraction(18, 1)
    >>> answer_value("18 (9×2)."), answer_value("She has 18 apples (9 boxes of 2)"), answer_value("18 (or 20)")
    (Fraction(18, 1), Fraction(18, 1), None)
    >>> answer_value("120 minutes (or 2 hours)"), answer_value(r"18 \text{ (or 20)}"), answer_value("1, 2, 3") is None
    (Fraction(120, 1), None, True)
    """
    remark = split_remark(TEXT_IN_FORMULA.sub(r"\1", answer))
    if remark is not None:  # before the sentence's last number, which may be the remark's
        if offers_another(*remark):
            return None
        value = _value(remark[0])
        if value is not None:
            return value
    return _value(answer)


def offers_another(value: str, remark: str) -> bool:
    """Whether a remark in brackets after an answer offers a second answer (``18 (or 20)``), not the same one
    restated: the same number written another way (``0.5 (or 1/2)``) or the quantity in another unit
    (``120 minutes (or 2 hours)``, ``$0.50 (or 50 cents)``).

    >>> offers_another("18", "or 20"), offers_another("18 cm", "or 20 cm"), offers_another("$18", "or 20 dollars")
    (True, True, True)
    >>> offers_another("120 min", "or 2 hours"), offers_another("$0.50", "or 50 cents"), offers_another("1", "or 2/2")
    (False, False, False)
    >>> offers_another("18 (9×2)", "9 + 9"), offers_another("18 apples", "or 20 if she keeps one")
    (False, True)
    """
    hedge = HEDGE.search(remark)
    if hedge is None:
        return False
    restated = RESTATED.fullmatch(remark, hedge.end() + (remark[hedge.end() : hedge.end() + 1] == " "))
    if remark[: hedge.start()].strip() or restated is None:
        return True
    first, second = _value(value), parse_number(restated["number"])
    if first is None or second is None:
        return True
    one_percent = (restated["unit"] == "%") != bool(PERCENT.search(value))  # 50% (or 0.5)
    if first == second or (one_percent and second in (first * 100, first / 100)):
        return False
    first_unit, second_unit = _unit(value), _unit_name(restated["currency"] or restated["unit"] or "")
    return not (first_unit and second_unit and first_unit != second_unit)


def _unit(value: str) -> str:
    """The unit of an answer's last amount, as ``_unit_name`` names it: ``$0.50`` -> dollar, ``2 hours`` -> hour."""
    amounts = list(RESTATED.finditer(value))
    if not amounts:
        return ""
    last = amounts[-1]
    currency = value[: last.start("number")].rstrip()[-1:]
    return _unit_name(currency if currency in UNIT_NAMES else last["unit"] or "")


def _unit_name(unit: str) -> str:
    unit = UNIT_NAMES.get(unit, unit.lower())
    return unit[:-1] if unit.endswith("s") and len(unit) > 2 else unit


def split_remark(answer: str) -> tuple[str, str] | None:
    """``(value, remark)`` for an answer that ends in a remark in brackets after a space, else None.

    >>> split_remark("18 (9×(1+1))."), split_remark("2(3)"), split_remark("(1, 2)")
    (('18', '9×(1+1)'), None, None)
    """
    text = answer.rstrip().rstrip(".").rstrip()
    if not text.endswith(")"):
        return None
    depth = 0
    for i in range(len(text) - 1, -1, -1):  # back to the bracket that opens the last one
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            break
    else:
        return None
    value = text[:i]
    if not value.strip() or not value[-1].isspace():
        return None
    return value.strip(), text[i + 1 : -1]


def _value(answer: str) -> Fraction | None:
    number = parse_number(answer)
    if number is not None:
        return number
    if DECIMAL_COMMA.match(answer.strip()):  # 2,5 is 2.5 in much of Europe; 1,000 stays a thousand
        return parse_number(answer.strip().replace(",", "."))
    amount = DECIMAL_COMMA_AMOUNT.match(answer.strip().rstrip("."))
    if amount:
        return parse_number(f"{amount[1]}.{amount[2]}{amount[3]}")
    equation = SIMPLE_EQUATION.match(answer)
    if equation:
        number = parse_number(equation.group(1))
        if number is not None:
            return number
    if _looks_like_latex(ESCAPED_SIGN.sub("", answer)) or not PROSE_WORD.search(answer):
        return None
    numbers = list(NUMBER.finditer(answer))
    if not numbers:
        return None
    with_words = parse_number(answer[numbers[-1].start() :])  # the words after it: 1.45 million dollars
    return with_words if with_words is not None else parse_number(numbers[-1].group())


def _looks_like_latex(text: str) -> bool:
    return "\\" in text or "^" in text or "{" in text


def needs_latex(answer: str, gold) -> bool:
    """Whether judging an extracted answer may reach a math-verify worker: LaTeX in it or in the gold (numbers
    never do).

    >>> needs_latex("18", "18"), needs_latex("\\frac{1}{2}", "1/2"), needs_latex("18", "\\boxed{18}")
    (False, True, True)
    """
    return _looks_like_latex(answer) or _looks_like_latex(str(gold))


def answer_part(completion: str, answer_after: str | None = None) -> str | None:
    """The text an answer is read from: the whole completion, or what follows the last ``answer_after``
    (``</think>``); None when ``answer_after`` never appears: the thought never ended, so nothing is answered.

    >>> answer_part("<think>so 18</think> 18", "</think>"), answer_part("<think>so 18", "</think>")
    (' 18', None)
    """
    if answer_after is None:
        return completion
    return completion.rsplit(answer_after, 1)[-1] if answer_after in completion else None


def score_completion(
    completion: str,
    gold: str,
    timeout: float = LATEX_TIMEOUT_SECONDS,
    mode: Mode = "flexible",
    truncated: bool = False,
    answer_after: str | None = None,
) -> tuple[str | None, bool | None]:
    """Extract the answer from a completion and check it: ``(extracted, correct)``.

    In ``strict`` mode a completion cut off by the length limit (``truncated``) is wrong whatever
    it says: an unfinished thought earns nothing. With ``answer_after`` the answer is read only
    after its last occurrence (see ``answer_part``). None when the gold cannot be read.

    >>> score_completion("<think>9 * 2 = 18", "18"), score_completion("<think>9 * 2 = 18", "18", mode="strict")
    (('18', True), (None, False))
    >>> score_completion("<answer>18</answer>", "18", mode="strict", truncated=True)
    ('18', False)
    >>> score_completion("<think>9 * 2 = 18", "18", answer_after="</think>")
    (None, False)
    """
    part = answer_part(completion, answer_after)
    extracted = extract_answer(part, mode) if part is not None else None
    return extracted, judge_answer(extracted, gold, timeout, mode, truncated)


def judge_answer(
    extracted: str | None,
    gold: str,
    timeout: float = LATEX_TIMEOUT_SECONDS,
    mode: Mode = "flexible",
    truncated: bool = False,
) -> bool | None:
    """``score_completion``'s verdict on an answer already extracted with ``extract_answer(completion, mode)``.

    >>> judge_answer("18", "18"), judge_answer("18", "18", mode="strict", truncated=True), judge_answer("18", "")
    (True, False, None)
    """
    if mode == "strict" and truncated:
        return None if not str(gold).strip() else False
    return check_answer(extracted, gold, timeout)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
