"""Masking secrets (the API token; client tokens later) out of everything upstream says.

Upstream may quote our request back: in an error message, a task record, an HTML error page. It may
quote it JSON-escaped (``\\/`` for ``/``, ``\\u002B`` for ``+`` as .NET does, every character as
``\\u0074`` ...), escaped twice (a JSON string inside a JSON string) or percent-encoded, so a plain
byte replacement before decoding misses it and decoding then puts the token back together. A
``Redactor`` matches each secret with every character in any of those spellings, in raw bytes
before decoding and in decoded strings after, and also as a ``logging.Filter`` for what slips
through to a log record some other way (a traceback that quotes a value).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_SECRET = 8  # shorter strings are test stand-ins; masking "t" would garble every message


def _char_pattern(c: str) -> str:
    """A regex for one character of a secret in any spelling an encoder may give it."""
    forms = [re.escape(c)]
    utf16 = c.encode("utf-16-be")
    units = [utf16[i : i + 2].hex() for i in range(0, len(utf16), 2)]
    forms.append("".join(rf"\\+u(?i:{u})" for u in units))  # \u0074, \\u0074, a surrogate pair
    if not (c.isascii() and c.isalnum()):
        if c.isascii():
            forms.append(rf"\\+{re.escape(c)}")  # \/ and other needless escapes
        forms.append("".join(f"%(?i:{b:02x})" for b in c.encode()))  # percent-encoded
    return "(?:" + "|".join(forms) + ")"


class Redactor:
    """Holds the secrets and masks them in bytes, strings, decoded JSON, exceptions and log records."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._plain: list[tuple[str, bytes]] = []  # each secret as itself, longest first
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        self.log_filter = _RedactingFilter(self)
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on (ignored when shorter than ``MIN_SECRET``)."""
        if len(secret) < MIN_SECRET or secret in self._secrets:
            return
        self._secrets.add(secret)
        # Longest first: a secret that contains another is masked whole.
        pattern = "|".join("".join(_char_pattern(c) for c in s) for s in sorted(self._secrets, key=len, reverse=True))
        self._text = re.compile(pattern)
        self._bytes = re.compile(pattern.encode("utf-8"))
        self._plain = [(s, s.encode("utf-8")) for s in sorted(self._secrets, key=len, reverse=True)]

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def bytes(self, raw: bytes) -> bytes:
        """Raw bytes, before decoding (spellings are matched as ASCII; a raw non-ASCII secret as UTF-8)."""
        if self._bytes is None:
            return raw
        if b"\\" not in raw and b"%" not in raw:  # no escape at all: only the plain spelling can be there
            for _, plain in self._plain:
                raw = raw.replace(plain, MASK.encode())
            return raw
        return self._bytes.sub(MASK.encode(), raw)

    def text(self, text: str) -> str:
        if self._text is None:
            return text
        # Every other spelling of a character needs a backslash or a percent sign: without either, a
        # substring test is enough (and the regex, run on every string upstream sends, cost ~0.1 ms a line).
        if "\\" not in text and "%" not in text:
            for plain, _ in self._plain:
                if plain in text:
                    text = text.replace(plain, MASK)
            return text
        return self._text.sub(MASK, text)

    def json(self, value: Any) -> Any:
        """Decoded JSON with every string (keys included) masked."""
        if self._text is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        return value

    def exception(self, exc: BaseException) -> BaseException:
        """``exc`` with its arguments and string attributes masked in place (``message``, ``code``,
        ``trace_id``... of a project error); returns it, so ``raise redactor.exception(e)`` reads."""
        if self._text is None:
            return exc
        exc.args = tuple(self.json(a) for a in exc.args)
        for name, value in vars(exc).items():
            if isinstance(value, str):
                setattr(exc, name, self.text(value))
        return exc

    def install(self, *handlers: logging.Handler) -> None:
        """Mask every record those handlers emit (default: the root logger's handlers). A filter on
        a handler sees the records of every logger that propagates to it; one on a logger does not."""
        for handler in handlers or tuple(logging.getLogger().handlers):
            if self.log_filter not in handler.filters:
                handler.addFilter(self.log_filter)


class _RedactingFilter(logging.Filter):
    """Rewrites a record with its message, traceback and stack masked; never drops one."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        r = self.redactor
        if not r:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not fit its format: mask what there is
            message = f"{record.msg} {record.args}"
        record.msg, record.args = r.text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = r.text(record.exc_text)
        if record.stack_info:
            record.stack_info = r.text(record.stack_info)
        return True
