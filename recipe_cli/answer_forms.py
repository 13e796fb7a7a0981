r"""The shapes a final answer takes, and when two of them are the same answer.

MATH, NuminaMath and olympiad answers are more than numbers: intervals with open or closed ends and
their unions, sets, tuples, lists of solutions, inequalities, equations, ratios, percentages,
multiple-choice letters, words, values with units. ``parse_form`` reads an answer as written into a
``Form``; ``match_forms`` compares a gold form with an answer form part by part: brackets, order
(tuples) or not (sets, lists of solutions), left-hand sides, choice letters. Single values
(``\sqrt{12}`` against ``2\sqrt{3}``) are compared by the function it is given, so this module never
touches sympy: ``recipe_cli.answers`` hands it exact fractions first and math-verify, in a bounded
worker process, for the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

# An equality test for two single values written in LaTeX; None when the gold cannot be read.
ValueTest = Callable[[str, str], "bool | None"]

MAX_ITEMS = 40  # parts compared per answer: a longer list is read as one value, never paired n x n

LESS, LESS_EQUAL, GREATER, GREATER_EQUAL, NOT_EQUAL = "<", "≤", ">", "≥", "≠"
RELATION = re.compile(r"(≤|≥|≠|<|>)")
# Commands that only style text: \textbf{(C)} is the letter C.
TEXT_COMMAND = re.compile(
    r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mathsf|mbox|operatorname)\s*\{"
)
CONNECTOR_WORDS = r"or|and|und|oder|et|ou|y|o|или|и|或|和|以及"
TEXT_CONNECTOR = re.compile(rf"\\text\{{\s*(?:{CONNECTOR_WORDS})\s*\}}")
CHOICE = re.compile(r"^\(([A-E])\)\s*(.*)$|^([A-E])$")
IDENTIFIER = re.compile(r"^(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[\w\\]+\}?)?(?:'+)?$")
CONSTANTS = {"\\pi", "\\infty", "e", "i"}  # identifiers that are not the variable of an inequality
ABSOLUTE = re.compile(r"^\|\s*(?:[A-Za-z]|\\[A-Za-z]+)\s*\|$")  # |x|
MIRRORED = {LESS: GREATER, GREATER: LESS, LESS_EQUAL: GREATER_EQUAL, GREATER_EQUAL: LESS_EQUAL}
NUMBER_WITH_SEPARATORS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
WORD = re.compile(r"[^\W\d_]{3,}")
INFINITY, NEGATIVE_INFINITY = r"\infty", r"-\infty"

# Digits grouped by commas, or by spaces as the SI writes them (1 000 000, with thin or no-break spaces too)
PLAIN_NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+|\d+)?(?:\.\d+)?$")
# Words and symbols around a number that do not change its value: "$1,000.", "50 %", "12 apples", "220 $", "₹18".
# (The ones at the end are stripped as characters: a regex anchored at the end took time quadratic in a run of them.)
NUMBER_DECORATION = re.compile(r"^[\s$€£¥₹]*|\\[%$]|\\text\{[^}]*\}|\\!|\\,")
TRAILING_DECORATION = ".%$€£¥₹"
# A unit word: "apples", "km/h", "m²", "cm^2"; a power of a lone letter (``3 x^2``) is algebra, not a unit.
UNIT = r"[^\W\d_]+(?:[²³]|(?<=[^\W\d_]{2}|/[^\W\d_])\^\{?[23]\}?)?"
UNIT_WORD = re.compile(rf"{UNIT}(?:/{UNIT})*")
FRACTION = re.compile(r"^(-?\d+)\s*/\s*(\d+)$")
MIXED_FRACTION = re.compile(r"^(-?)(\d+)\s+(\d+)\s*/\s*(\d+)$")  # 3 1/2 = 7/2 when the fraction is below 1
LATEX_FRACTION = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")
MIXED_NUMBER = re.compile(r"^(-?)(\d+)\s*\\[dt]?frac\{(\d+)\}\{(\d+)\}$")  # MATH's 1\frac{1}{4} = 5/4
REPEATING_DECIMAL = re.compile(r"^(-?)(\d*)\.(\d*)\\overline\{(\d+)\}$")  # 0.\overline{3} = 1/3
# A scale word after a number multiplies it (1.45 million, 1.45 \text{ million}); read before the unit words are
# dropped, which would make 1.45 million 1.45. Not "dozen": "2 dozen" answers "how many dozen".
SCALE = re.compile(r"(?<=\d)\s*(?:\\text\s*\{\s*)?(hundred|thousand|million|billion|trillion)(?![^\W\d_])", re.I)
SCALES = {"hundred": 10**2, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
# Scientific notation: 1.8e1, 1.8E+1, 1.8 \times 10^{1}, 1.8 × 10^1, 1.8 * 10^1; an exponent of at most three digits,
# so a runaway 1e999999999 never becomes a billion-digit integer
SCIENTIFIC = re.compile(
    r"^(-?\d+(?:\.\d*)?|-?\.\d+)\s*"
    r"(?:[eE]\s*([-+]?\d{1,3})|(?:\\times|\\cdot|[×·*xX])\s*10\s*\^\s*(?:\{\s*([-+]?\d{1,3})\s*\}|([-+]?\d{1,3})))$"
)


def parse_number(text: str) -> Fraction | None:
    r"""The exact value of a plainly written number, or None when ``text`` is not one.

    >>> parse_number("1,000.00") == parse_number("1000") == parse_number("1{,}000")
    True
    >>> parse_number("$18.") , parse_number("-3/4"), parse_number("50%"), parse_number(r"\frac{-3}{2}")
    (Fraction(18, 1), Fraction(-3, 4), Fraction(50, 1), Fraction(-3, 2))
    >>> parse_number("12 apples"), parse_number(r"1\frac{1}{4}"), parse_number("1 1/4"), parse_number(r"0.\overline{3}")
    (Fraction(12, 1), Fraction(5, 4), Fraction(5, 4), Fraction(1, 3))
    >>> parse_number("1 000 000"), parse_number("1\u202f000.5"), parse_number("12 34") is None  # SI digit groups
    (Fraction(1000000, 1), Fraction(2001, 2), True)
    >>> parse_number("1.8e1"), parse_number(r"-2.5 \times 10^{-3}"), parse_number("6.02 × 10^23") == 602 * 10**21
    (Fraction(18, 1), Fraction(-1, 400), True)
    >>> parse_number("$1.45 million"), parse_number(r"1.45 \text{ million}"), parse_number("2 dozen")
    (Fraction(1450000, 1), Fraction(1450000, 1), Fraction(2, 1))
    >>> parse_number("x + 1") is None, parse_number("9" * 5000) is None  # longer than Python reads as an int
    (True, True)
    """
    try:
        return _read_number(text)
    except ValueError:  # over sys.get_int_max_str_digits() digits (4300): a runaway answer, not a number to compare
        return None


def _read_number(text: str) -> Fraction | None:
    scale = SCALE.search(text)
    if scale is not None:
        value = _read_number(text[: scale.start(1)] + text[scale.end(1) :])
        return value * SCALES[scale.group(1).lower()] if value is not None else None
    cleaned = NUMBER_DECORATION.sub("", text.strip().replace("\u2212", "-").replace("{,}", ","))
    end = len(cleaned)
    while end and (cleaned[end - 1].isspace() or cleaned[end - 1] in TRAILING_DECORATION):
        end -= 1
    cleaned = cleaned[:end]
    cleaned = _drop_unit_words(cleaned)
    cleaned = cleaned.strip().rstrip(".").strip()
    if cleaned.startswith("+"):
        cleaned = cleaned[1:]
    if cleaned and PLAIN_NUMBER.match(cleaned) and any(c.isdigit() for c in cleaned):
        return Fraction(re.sub(r"[, \u00a0\u2009\u202f]", "", cleaned))
    match = FRACTION.match(cleaned)
    if match:
        numerator, denominator = int(match.group(1)), int(match.group(2))
        return Fraction(numerator, denominator) if denominator else None
    match = MIXED_FRACTION.match(cleaned)
    if match and 0 < int(match.group(3)) < int(match.group(4)):
        value = int(match.group(2)) + Fraction(int(match.group(3)), int(match.group(4)))
        return -value if match.group(1) else value
    match = LATEX_FRACTION.match(cleaned)
    if match:
        sign, numerator, denominator = match.group(1), int(match.group(2)), int(match.group(3))
        return (-1 if sign else 1) * Fraction(numerator, denominator) if denominator else None
    match = MIXED_NUMBER.match(cleaned)
    if match and int(match.group(4)):
        value = int(match.group(2)) + Fraction(int(match.group(3)), int(match.group(4)))
        return -value if match.group(1) else value
    match = REPEATING_DECIMAL.match(cleaned)
    if match:
        sign, whole, fixed, repeated = match.groups()
        value = Fraction(int(whole or 0)) + Fraction(int(fixed or 0), 10 ** len(fixed))
        value += Fraction(int(repeated), 10 ** len(fixed) * (10 ** len(repeated) - 1))
        return -value if sign else value
    match = SCIENTIFIC.match(cleaned)
    if match:
        exponent = int(next(group for group in match.groups()[1:] if group is not None))
        return Fraction(match.group(1)) * Fraction(10) ** exponent
    return None


def _drop_unit_words(text: str) -> str:
    """``text`` without the words that end it after a first word or number: ``12 apples`` -> ``12``.

    Word by word from the end, in time linear in the text: a regex anchored at the end tried every
    space of a long answer sentence and took time quadratic in its length.

    >>> _drop_unit_words("12 red apples"), _drop_unit_words("18 km/h"), _drop_unit_words("apples")
    ('12 ', '18 ', 'apples')
    >>> _drop_unit_words("1 apple 2"), _drop_unit_words("3 x^2")
    ('1 apple 2', '3 x^2')
    """
    words = [match.span() for match in re.finditer(r"\S+", text)]
    keep = len(words)
    while keep > 1 and UNIT_WORD.fullmatch(text, *words[keep - 1]):
        keep -= 1
    return text[: words[keep][0]] if keep < len(words) else text


# Rewrites that make spellings of the same value identical; order matters (\dfrac before \frac fixes).
REWRITES = [
    (re.compile(r"\\left\.|\\right\."), ""),
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])"), ""),
    (re.compile(r"\\(?:displaystyle|textstyle|scriptstyle)(?![A-Za-z])"), ""),
    (re.compile(r"\\\$|\$|\\\(|\\\)|\\\[|\\\]"), " "),  # math delimiters and currency signs
    (re.compile(r"\\[dt]frac(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\\frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),
    (re.compile(r"\\frac\s*(\d)\s*\{"), r"\\frac{\1}{"),
    (re.compile(r"\\frac\s*(\{[^{}]*\})\s*(\d)"), r"\\frac\1{\2}"),
    (re.compile(r"\\sqrt\s*(\d)"), r"\\sqrt{\1}"),
    (re.compile(r"(\d)\{,\}(\d)"), r"\1,\2"),
    (re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°"), ""),
    (re.compile(r"\\text\{\s*(?:degrees?|deg)\s*\}|(?<=\d)\s*degrees?\b"), ""),
    (re.compile(r"\\text\{\s*percent\s*\}|(?<=\d)\s*percent\b"), "%"),
    (re.compile(r"\\%"), "%"),
    (re.compile(r"\\mbox\s*\{"), r"\\text{"),
    (re.compile(r"\\(?:textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mathsf|operatorname)\s*\{"), r"\\text{"),
    (re.compile(r"\\(?:leqslant|leq|le)(?![A-Za-z])|<=|⩽"), LESS_EQUAL),
    (re.compile(r"\\(?:geqslant|geq|ge)(?![A-Za-z])|>=|⩾"), GREATER_EQUAL),
    (re.compile(r"\\(?:neq|ne)(?![A-Za-z])|!="), NOT_EQUAL),
    (re.compile(r"\\lt(?![A-Za-z])"), LESS),
    (re.compile(r"\\gt(?![A-Za-z])"), GREATER),
    (re.compile(r"\\colon(?![A-Za-z])"), ":"),
    (re.compile(r"\\[lr]vert(?![A-Za-z])|\\mid(?![A-Za-z])"), "|"),
    (re.compile(r"∞|\\infin(?![A-Za-z])"), r"\\infty"),
    (re.compile(r"\+\s*\\infty"), r"\\infty"),
    (re.compile(r"\\varnothing|∅|\\\{\s*\\\}"), r"\\emptyset"),
    (re.compile(r"\u2212|\u2013"), "-"),
    (re.compile(r"(?<!\\)\\[,;:!> ]|~|\\q?quad(?![A-Za-z])"), " "),
    (TEXT_CONNECTOR, lambda m: " " + m.group(0)[6:-1].strip() + " "),
    # French open ends: ]-2 ; 3] is (-2, 3], [0 ; 1[ is [0, 1)
    (re.compile(r"(^|\\in\s*|=\s*)\]([^\[\]()]*[;,][^\[\]()]*)\]$"), r"\1(\2]"),
    (
        re.compile(r"(^|\\in\s*|=\s*)([\[\]])([^\[\]()]*[;,][^\[\]()]*)\[$"),
        lambda m: m.group(1) + ("(" if m.group(2) == "]" else "[") + m.group(3) + ")",
    ),
    (re.compile(r"\s+"), " "),
]


@dataclass(frozen=True)
class Form:
    r"""An answer's shape: ``kind`` and its parts.

    ``value``: a single value in LaTeX (``\frac{1}{2}``). ``text``: words or a choice letter.
    ``choice``: a multiple-choice letter (``text``) with the value after it (``items``, maybe empty).
    ``set`` and ``list`` (solutions separated by commas, "or", "and": ``text`` is "and" when joined by
    it): parts in any order. ``tuple``: ordered parts
    inside ``brackets`` (``"()"``, ``"[)"``: a two-part tuple is also an interval). ``union``: intervals.
    ``relation``: an inequality, with the intervals it stands for in ``items`` when it has one variable.
    ``equation``: ``text`` is the left-hand side, ``items`` holds the right-hand side. ``ratio``: its
    terms. ``percent`` marks a value written with ``%``.
    """

    kind: str
    text: str = ""
    items: tuple[Form, ...] = ()
    brackets: str = ""
    percent: bool = False


def normalize(text: str) -> str:
    r"""An answer with spellings that do not change its value made identical.

    Math delimiters, ``\left``/``\right``, thin spaces, ``\dfrac``, degree signs and ``\%`` go;
    relations become ``≤ ≥ ≠``; ``\text{ or }`` becomes " or "; a trailing full stop goes.

    >>> normalize(r"$\left[ \dfrac12, 3 \right)$.")
    '[ \\frac{1}{2}, 3 )'
    >>> normalize(r"x \geq 30^\circ \text{ or } x \le 10{,}000")
    'x ≥ 30 or x ≤ 10,000'
    """
    for pattern, replacement in REWRITES:
        text = pattern.sub(replacement, text)
    return text.strip().rstrip(".,;。").strip()


def parse_form(text: str) -> Form | None:
    r"""The shape of an answer as written, or None when it is empty.

    >>> form = parse_form("[0, 1)")
    >>> form.kind, form.brackets, [item.text for item in form.items]
    ('tuple', '[)', ['0', '1'])
    >>> [parse_form(s).kind for s in (r"\{1,2\}", "1, 2", r"x \ge 3", "y = 2x", "3:4", r"\text{odd}", "(C)")]
    ['set', 'list', 'relation', 'equation', 'ratio', 'text', 'choice']
    """
    normalized = normalize(text)
    return _parse(normalized, 0) if normalized else None


def spelling(text: str) -> str:
    r"""An answer written back from its shape, without spaces: one spelling for the ways of writing it that
    differ only in form (spacing, delimiters, ``\dfrac``, ``\text{(C)}`` for ``C``).

    >>> spelling("(1,2)") == spelling(r"\left( 1, 2 \right)"), spelling(r"\text{(C)}") == spelling("C")
    (True, True)
    >>> spelling("x + 1"), spelling(r"$\dfrac{\pi}{ 2}$"), spelling(r"\frac12")
    ('x+1', '\\frac{\\pi}{2}', '\\frac{1}{2}')
    """
    form = parse_form(text)
    return _key(_spell(form)) if form is not None else ""


def _parse(s: str, depth: int) -> Form:
    s = s.strip().rstrip(".,;").strip()
    if depth > 8 or not s:
        return Form("value", s)
    unwrapped = _whole_text(s)
    if unwrapped is not None:
        return _parse_text(unwrapped, depth)
    s = _drop_units(s)
    if NUMBER_WITH_SEPARATORS.match(s):
        return Form("value", s.replace(",", ""))
    parts = _split_top(s, (",", ";", " or ", " and "))
    if len(parts) > 1:
        if len(parts) > MAX_ITEMS:
            return Form("value", s)
        joined = "and" if len(_split_top(s, (" and ",))) > 1 else ""  # x > 1 and x < 3 is no union
        return Form("list", joined, tuple(_parse(part, depth + 1) for part in parts))
    return _parse_single(s, depth)


def _parse_single(s: str, depth: int) -> Form:
    choice = CHOICE.match(s)
    if choice:
        letter = choice.group(1) or choice.group(3)
        rest = (choice.group(2) or "").strip()
        return Form("choice", letter, (_parse(rest, depth + 1),) if rest else ())
    member = _split_top(s, ("\\in", "∈"))
    if len(member) == 2 and member[0].strip() and member[1].strip():
        return Form("equation", _key(member[0]), (_parse(member[1], depth + 1),))
    sides = _split_top(s, ("=",))
    if len(sides) > 1 and all(side.strip() for side in sides):
        return Form("equation", _key(sides[0]), (_parse(sides[-1], depth + 1),))
    if RELATION.search(s) and _split_top(s, (LESS, GREATER, LESS_EQUAL, GREATER_EQUAL, NOT_EQUAL))[1:]:
        return _relation(s)
    pieces = _split_top(s, ("\\cup",))
    if len(pieces) > 1:
        return Form("union", items=tuple(_parse(piece, depth + 1) for piece in pieces))
    terms = _split_top(s, (":",))
    if len(terms) > 1 and all(term.strip() for term in terms):
        return Form("ratio", items=tuple(Form("value", term.strip()) for term in terms))
    bracketed = _bracketed(s, depth)
    if bracketed is not None:
        return bracketed
    if s in ("\\emptyset",):
        return Form("set")
    if s.replace(" ", "") in ("\\mathbb{R}", "\\mathbb R", "ℝ"):
        return Form("union", items=(_interval("()", NEGATIVE_INFINITY, INFINITY),))
    plus_minus = _split_top(s, ("\\pm",))
    if len(plus_minus) == 2:
        base, offset = plus_minus[0].strip(), plus_minus[1].strip()
        return Form("list", items=tuple(Form("value", f"{base}{sign}{offset}".strip()) for sign in ("+", "-")))
    if s.endswith("%"):
        return Form("value", s[:-1].strip(), percent=True)
    if re.fullmatch(r"[^\W\d_]+(?: [^\W\d_]+)*", s) and WORD.search(s):
        return Form("text", s.lower())
    return Form("value", s)


def _parse_text(inner: str, depth: int) -> Form:
    """Text written in ``\\text{}`` and friends: a choice letter, words, or several of them."""
    inner = inner.strip().rstrip(".")
    parts = _split_top(inner, (",", ";", " or ", " and "))
    if len(parts) > 1:
        return Form("list", items=tuple(_parse_text(part, depth + 1) for part in parts[:MAX_ITEMS]))
    choice = CHOICE.match(inner.strip())
    if choice:
        letter = choice.group(1) or choice.group(3)
        rest = (choice.group(2) or "").strip()
        return Form("choice", letter, (_parse(rest, depth + 1),) if rest else ())
    if re.search(r"\d|\\", inner):  # \text{5 cm}: a value after all
        return _parse(inner, depth + 1)
    return Form("text", " ".join(inner.lower().split()))


def _whole_text(s: str) -> str | None:
    r"""The content when ``s`` is text only (``\text{(C)}``, ``\textbf{(D)}\ 12``), else None."""
    if not TEXT_COMMAND.match(s):
        return None
    out, i = [], 0
    while i < len(s):
        match = TEXT_COMMAND.match(s, i)
        if match:
            end = _closing(s, match.end() - 1)
            if end is None:
                return None
            out.append(s[match.end() : end])
            i = end + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _drop_units(s: str) -> str:
    r"""``36\pi \text{ cm}^2`` -> ``36\pi``: a trailing ``\text{}`` after a value is its unit."""
    while True:
        match = re.search(r"\s*\\text\{[^{}]*\}\s*(?:\^\s*\{?\d\}?)?\s*$", s)
        if not match or not s[: match.start()].strip() or s[: match.start()].rstrip().endswith(("=", "\\in")):
            return s
        s = s[: match.start()].rstrip()


def _closing(s: str, start: int) -> int | None:
    """The index of the brace that closes the one at ``start``."""
    depth = 0
    for i in range(start, len(s)):
        if s[i] == "{" and (i == 0 or s[i - 1] != "\\"):
            depth += 1
        elif s[i] == "}" and (i == 0 or s[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return i
    return None


def _split_top(s: str, separators: tuple[str, ...]) -> list[str]:
    r"""``s`` split at the separators that sit outside every bracket and brace.

    Brackets pair by depth, not by kind, so the half-open ``[0, 1)`` nests like ``(0, 1)``.

    >>> _split_top(r"(1, 2), [3, 4), \{5, 6\}", (",",))
    ['(1, 2)', ' [3, 4)', ' \\{5, 6\\}']
    """
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        ch = s[i]
        if ch in "([{" or s.startswith("\\{", i):
            depth += 1
            i += 2 if ch == "\\" else 1
            continue
        if ch in ")]}" or s.startswith("\\}", i):
            depth = max(0, depth - 1)
            i += 2 if ch == "\\" else 1
            continue
        if depth == 0:
            found = next((sep for sep in separators if s.startswith(sep, i)), None)
            if found is not None and not (found.startswith("\\") and s[i + len(found) : i + len(found) + 1].isalpha()):
                parts.append(s[start:i])
                i += len(found)
                start = i
                continue
        i += 1
    parts.append(s[start:])
    return parts


def _bracketed(s: str, depth: int) -> Form | None:
    r"""``\{...\}`` as a set; ``(...)`` / ``[...]`` holding commas as a tuple or interval; ``(x)`` as ``x``."""
    if s.startswith("\\{") and s.endswith("\\}") and _outer_pair(s):
        inner = s[2:-2].strip()
        if not inner:
            return Form("set")
        parts = _split_top(inner, (",", ";"))
        return Form("set", items=tuple(_parse(part, depth + 1) for part in parts[:MAX_ITEMS]))
    if s[:1] in "([" and s[-1:] in ")]" and _outer_pair(s):
        inner = s[1:-1]
        parts = _split_top(inner, (",",))
        if len(parts) == 1:
            parts = _split_top(inner, (";",))  # (-\infty; 2), as written in Russia and France
        if len(parts) == 1:
            return _parse(inner, depth + 1)
        if len(parts) > MAX_ITEMS:
            return Form("value", s)
        return Form("tuple", items=tuple(_parse(part, depth + 1) for part in parts), brackets=s[0] + s[-1])
    return None


def _outer_pair(s: str) -> bool:
    """Whether the first bracket of ``s`` closes at its very end (``(1)(2)`` is a product, not one pair)."""
    depth, i = 0, 0
    while i < len(s):
        step = 2 if s.startswith(("\\{", "\\}"), i) else 1
        if s[i] in "([{" or s.startswith("\\{", i):
            depth += 1
        elif s[i] in ")]}" or s.startswith("\\}", i):
            depth -= 1
            if depth == 0 and i + step < len(s):
                return False
        i += step
    return depth == 0


def _interval(brackets: str, low: str, high: str) -> Form:
    return Form("tuple", items=(Form("value", low), Form("value", high)), brackets=brackets)


def _relation(s: str) -> Form:
    r"""An inequality, with the intervals it describes when one side is a lone variable.

    >>> [f.brackets + f.items[0].text + "," + f.items[1].text for f in _relation("-2 < x ≤ 7").items]
    ['(]-2,7']
    """
    tokens = RELATION.split(s)
    operands, operators = [t.strip() for t in tokens[::2]], tokens[1::2]
    if not all(operands):
        return Form("relation", _key(s))
    variables = [i for i, operand in enumerate(operands) if IDENTIFIER.match(operand) and operand not in CONSTANTS]
    absolute = [i for i, operand in enumerate(operands) if ABSOLUTE.match(operand)]
    intervals: tuple[Form, ...] = ()
    if len(operands) == 2 and not variables and len(absolute) == 1:  # |x| <= 1 is -1 <= x <= 1
        if absolute[0] == 1:
            operands.reverse()
            operators = [MIRRORED.get(operators[0], operators[0])]
        bound, op = operands[1], operators[0]
        number = parse_number(bound)
        negative = str(-number) if number is not None else f"-{bound}"
        intervals = {
            LESS: (_interval("()", negative, bound),),
            LESS_EQUAL: (_interval("[]", negative, bound),),
            GREATER: (_interval("()", NEGATIVE_INFINITY, negative), _interval("()", bound, INFINITY)),
            GREATER_EQUAL: (_interval("(]", NEGATIVE_INFINITY, negative), _interval("[)", bound, INFINITY)),
        }.get(op, ())
    elif len(operands) == 2 and len(variables) == 1:
        if variables[0] == 1:  # 3 < x reads as x > 3
            operands.reverse()
            operators = [MIRRORED.get(operators[0], operators[0])]
        bound, op = operands[1], operators[0]
        intervals = {
            LESS: (_interval("()", NEGATIVE_INFINITY, bound),),
            LESS_EQUAL: (_interval("(]", NEGATIVE_INFINITY, bound),),
            GREATER: (_interval("()", bound, INFINITY),),
            GREATER_EQUAL: (_interval("[)", bound, INFINITY),),
            NOT_EQUAL: (_interval("()", NEGATIVE_INFINITY, bound), _interval("()", bound, INFINITY)),
        }[op]
    elif len(operands) == 3 and variables == [1]:
        low_op, high_op = operators
        if low_op in (GREATER, GREATER_EQUAL) and high_op in (GREATER, GREATER_EQUAL):  # 7 > x > 2
            operands.reverse()
            low_op, high_op = high_op, low_op
        if low_op in (LESS, LESS_EQUAL) and high_op in (LESS, LESS_EQUAL):
            left = "(" if low_op == LESS else "["
            right = ")" if high_op == LESS else "]"
            intervals = (_interval(left + right, operands[0], operands[2]),)
    return Form("relation", _key(s), intervals)


def _key(s: str) -> str:
    """A spelling with the spaces removed, for comparing left-hand sides and texts."""
    return re.sub(r"\s+", "", s)


def match_forms(gold: Form, answer: Form, equal: ValueTest) -> bool | None:
    r"""Whether ``answer`` is the same answer as ``gold``; None when the gold cannot be read.

    ``equal`` compares two single values (LaTeX strings).

    >>> same = lambda a, b: a.replace(" ", "") == b.replace(" ", "")
    >>> match_forms(parse_form("(0, 9)"), parse_form("[0, 9)"), same)
    False
    >>> match_forms(parse_form(r"\{1, 2, 3\}"), parse_form("3, 1, 2"), same)
    True
    >>> match_forms(parse_form("[3, \\infty)"), parse_form("x \\geq 3"), same)
    True
    >>> match_forms(parse_form("5"), parse_form("x = 5"), same)
    True
    >>> match_forms(parse_form(r"\text{E}"), parse_form("$E$"), same)
    True
    """
    if gold.kind == "value" and answer.kind == "value" and not (gold.percent or answer.percent):
        return _same_value(gold.text, answer.text, equal)
    return _same(gold, answer, equal, 0)


def _same(gold: Form, answer: Form, equal: ValueTest, depth: int) -> bool:
    if depth > 8:
        return False
    if gold.kind == "equation" and answer.kind == "equation":
        if gold.text == answer.text:
            return _same(gold.items[0], answer.items[0], equal, depth + 1)
        return bool(equal(f"{gold.text}={_spell(gold.items[0])}", f"{answer.text}={_spell(answer.items[0])}"))
    if gold.kind == "equation":
        return _same(gold.items[0], answer, equal, depth + 1)
    if answer.kind == "equation":
        return _same(gold, answer.items[0], equal, depth + 1)
    if "relation" in (gold.kind, answer.kind) or "union" in (gold.kind, answer.kind):
        return _same_intervals(gold, answer, equal, depth)
    if {gold.kind, answer.kind} == {"tuple", "list"}:  # x = 1, y = 2 is the point (1, 2)
        point, values = (gold, _assigned(answer)) if gold.kind == "tuple" else (answer, _assigned(gold))
        if values is not None and len(values) == len(point.items) and point.brackets == "()":
            pairs = zip(point.items, values, strict=True)
            return all(
                _same(p, v, equal, depth + 1) if point is gold else _same(v, p, equal, depth + 1) for p, v in pairs
            )
    if gold.kind in ("set", "list") or answer.kind in ("set", "list"):
        return _same_collection(gold, answer, equal, depth)
    if gold.kind == "choice" or answer.kind == "choice":
        return _same_choice(gold, answer, equal, depth)
    if gold.kind == "ratio" or answer.kind == "ratio":
        return _same_ratio(gold, answer, equal)
    if gold.kind != answer.kind:
        return False
    if gold.kind == "tuple":
        return (
            gold.brackets == answer.brackets
            and len(gold.items) == len(answer.items)
            and all(_same(g, a, equal, depth + 1) for g, a in zip(gold.items, answer.items, strict=True))
        )
    if gold.kind == "text":
        return gold.text == answer.text
    if gold.percent or answer.percent:
        return _same_percent(gold, answer, equal)
    return bool(_same_value(gold.text, answer.text, equal))


def _assigned(form: Form) -> tuple[Form, ...] | None:
    """The right-hand sides of a list of equations that each give a different variable (``x = 1, y = 2``)."""
    if form.kind != "list" or not all(item.kind == "equation" and IDENTIFIER.match(item.text) for item in form.items):
        return None
    if len({item.text for item in form.items}) != len(form.items):
        return None
    return tuple(item.items[0] for item in form.items)


def _same_value(gold: str, answer: str, equal: ValueTest) -> bool | None:
    if _key(gold) == _key(answer):
        return True
    gold_number, answer_number = parse_number(gold), parse_number(answer)
    if gold_number is not None and answer_number is not None:
        return gold_number == answer_number
    return equal(gold, answer)


def _same_percent(gold: Form, answer: Form, equal: ValueTest) -> bool:
    """``25%`` is 25 and also 1/4: a value with ``%`` on one side matches either reading."""
    if gold.percent and answer.percent:
        return bool(_same_value(gold.text, answer.text, equal))
    percent, plain = (gold, answer) if gold.percent else (answer, gold)
    if _same_value(percent.text, plain.text, equal):
        return True
    as_share = f"\\frac{{{percent.text}}}{{100}}"
    number = parse_number(percent.text)
    if number is not None:
        as_share = str(number / 100)
    return bool(_same_value(as_share, plain.text, equal) if gold.percent else _same_value(plain.text, as_share, equal))


def _intervals(form: Form) -> tuple[Form, ...] | None:
    """The intervals a form stands for: a union, a two-part tuple, an inequality with one variable."""
    if form.kind == "union" and all(_intervals(item) for item in form.items):
        return tuple(interval for item in form.items for interval in _intervals(item))
    if form.kind == "tuple" and len(form.items) == 2:
        return (form,)
    if form.kind == "relation" and form.items:
        return form.items
    if (
        form.kind == "list"
        and form.text != "and"
        and all(item.kind == "relation" and item.items for item in form.items)
    ):
        return tuple(interval for item in form.items for interval in item.items)  # x < -1 or x > 2
    return None


def _same_intervals(gold: Form, answer: Form, equal: ValueTest, depth: int) -> bool:
    gold_parts, answer_parts = _intervals(gold), _intervals(answer)
    if gold_parts is None or answer_parts is None:
        if gold.kind == answer.kind == "relation":
            return gold.text == answer.text or bool(equal(gold.text, answer.text))
        return False
    return _matched(gold_parts, answer_parts, equal, depth)


def _same_collection(gold: Form, answer: Form, equal: ValueTest, depth: int) -> bool:
    """Sets and lists of solutions: the same parts in any order (a set of one is its element)."""
    gold_items = gold.items if gold.kind in ("set", "list") else (gold,)
    answer_items = answer.items if answer.kind in ("set", "list") else (answer,)
    if gold.kind == "list" and answer.kind not in ("set", "list") and _intervals(gold) and _intervals(answer):
        return _same_intervals(gold, answer, equal, depth)
    return _matched(gold_items, answer_items, equal, depth)


def _matched(gold_items: tuple[Form, ...], answer_items: tuple[Form, ...], equal: ValueTest, depth: int) -> bool:
    """Whether the parts pair up one to one (any order); duplicates in either list count once."""
    gold_items, answer_items = _distinct(gold_items), _distinct(answer_items)
    if len(gold_items) != len(answer_items):
        return False
    unmatched = list(answer_items)
    for item in gold_items:
        partner = next((a for a in unmatched if _same(item, a, equal, depth + 1)), None)
        if partner is None:
            return False
        unmatched.remove(partner)
    return True


def _distinct(items: tuple[Form, ...]) -> tuple[Form, ...]:
    seen, out = set(), []
    for item in items:
        key = _spell(item)
        if key not in seen:
            seen.add(key)
            out.append(item)
    return tuple(out)


def _same_choice(gold: Form, answer: Form, equal: ValueTest, depth: int) -> bool:
    r"""``(D) 12`` is answered by ``D``, ``\textbf{(D)}`` or ``12``."""
    if gold.kind == "choice" and answer.kind == "choice":  # the letter, and the values when both give one
        values = gold.items and answer.items
        return gold.text == answer.text and (not values or _same(gold.items[0], answer.items[0], equal, depth + 1))
    choice, other = (gold, answer) if gold.kind == "choice" else (answer, gold)
    if not choice.items:
        return other.kind == "text" and other.text == choice.text.lower()
    value = choice.items[0]
    return _same(value, other, equal, depth + 1) if choice is gold else _same(other, value, equal, depth + 1)


def _same_ratio(gold: Form, answer: Form, equal: ValueTest) -> bool:
    """``11:21`` equals ``22:42`` and ``\\frac{11}{21}``; ``1:2:3`` equals ``2:4:6``."""
    if gold.kind == answer.kind == "ratio":
        if len(gold.items) != len(answer.items):
            return False
        if all(_same_value(g.text, a.text, equal) for g, a in zip(gold.items, answer.items, strict=True)):
            return True
        first_gold, first_answer = gold.items[0].text, answer.items[0].text
        return all(
            _same_value(f"\\frac{{{g.text}}}{{{first_gold}}}", f"\\frac{{{a.text}}}{{{first_answer}}}", equal)
            for g, a in zip(gold.items[1:], answer.items[1:], strict=True)
        )
    ratio, other = (gold, answer) if gold.kind == "ratio" else (answer, gold)
    if len(ratio.items) != 2 or other.kind != "value" or other.percent:
        return False
    quotient = _quotient(ratio.items[0].text, ratio.items[1].text)
    return bool(_same_value(quotient, other.text, equal) if ratio is gold else _same_value(other.text, quotient, equal))


def _quotient(numerator: str, denominator: str) -> str:
    top, bottom = parse_number(numerator), parse_number(denominator)
    if top is not None and bottom:
        value = Fraction(top) / bottom
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return f"\\frac{{{numerator}}}{{{denominator}}}"


def _spell(form: Form) -> str:
    """A form written back as LaTeX (for math-verify, and as a key for duplicates)."""
    if form.kind in ("value", "text", "relation"):
        return form.text + ("%" if form.percent else "")
    if form.kind == "choice":
        return f"({form.text})" + (" " + _spell(form.items[0]) if form.items else "")
    if form.kind == "equation":
        return f"{form.text}={_spell(form.items[0])}"
    inner = ", ".join(_spell(item) for item in form.items)
    if form.kind == "set":
        return f"\\{{{inner}\\}}"
    if form.kind == "tuple":
        return form.brackets[0] + inner + form.brackets[1]
    if form.kind == "union":
        return "\\cup".join(_spell(item) for item in form.items)
    if form.kind == "ratio":
        return ":".join(_spell(item) for item in form.items)
    return inner
