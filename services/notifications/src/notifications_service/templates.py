"""Emails from the template files in `templates/<name>/`: `subject.txt`, `body.txt`, `body.html`.

Jinja2 escapes every value in `.html` templates (a name like `<script>` shows as text), and
every value in any template is put on one line first (`one_line`), so no value can start a
line of its own: a name like "Bob\\r\\nBcc: x" can neither forge a header nor fake a line of
the text. Subjects are one line in any case, and short.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

FOLDER = Path(__file__).with_name("templates")
MAX_SUBJECT = 150
_BREAKS = {"Cc", "Zl", "Zp"}  # control characters, line and paragraph separators


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str


def one_line(value: str) -> str:
    """Line breaks and other control characters become spaces; runs of spaces one."""
    spaced = "".join(" " if unicodedata.category(c) in _BREAKS else c for c in value)
    return " ".join(spaced.split())


def _finalize(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Markup):
        return one_line(value)
    return value


def money(cents: int, currency: str) -> str:
    """1250, "USD" -> "12.50 USD" (every currency the shop sells in has cents)."""
    return f"{Decimal(cents).scaleb(-2):,.2f} {currency}"


class Templates:
    def __init__(self, folder: Path = FOLDER) -> None:
        self._env = Environment(
            loader=FileSystemLoader(folder),
            autoescape=select_autoescape(["html"], default_for_string=False),
            undefined=StrictUndefined,  # a misspelt variable fails the email, not blanks it
            finalize=_finalize,
            keep_trailing_newline=True,
        )
        self._env.filters["money"] = money

    def render(self, template: str, to: str, **context: Any) -> Email:
        def part(file: str) -> str:
            return self._env.get_template(f"{template}/{file}").render(context)

        subject = one_line(part("subject.txt"))
        if len(subject) > MAX_SUBJECT:
            subject = subject[: MAX_SUBJECT - 1].rstrip() + "…"
        return Email(to=to, subject=subject, text=part("body.txt"), html=part("body.html"))
