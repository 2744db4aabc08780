"""``ast.unparse`` with each long string literal written once per run, not once per child.

``ast.unparse`` writes a string literal a character at a time (each one tested and perhaps
escaped). A child's hash unparses the statements its edit changed (``blocks._unparsed``), and
the function a model or the GP rewrites keeps its docstring from child to child: jssp's ~900
characters took ~70 % of a child's hash. Here the unparser's literal helper is memoised on its
arguments (the literal, the quotes allowed, whether whitespace is escaped), which are all it
reads, so the text is ``ast.unparse``'s to the character. Short literals are written as before
(cheaper than a lookup); the memo is bounded by the characters it holds (``text_cache``). Where
this Python's ``ast`` has no such helper, this is ``ast.unparse`` itself.
"""

from __future__ import annotations

import ast
from typing import Any

from evolve.text_cache import text_cache

# Literals shorter than this are written by ast itself: ~0.1 us a character against a lookup.
MIN_MEMO_CHARS = 64
MEMO_CHARS = 4 * 1024 * 1024  # of literals kept (with their escaped text: about twice that)

_Unparser: Any = getattr(ast, "_Unparser", None)
_helper: Any = getattr(_Unparser, "_str_literal_helper", None)


@text_cache(maxsize=512, max_chars=MEMO_CHARS)
def _literal(string: str, quote_types: tuple[str, ...], escape_special_whitespace: bool) -> tuple[str, tuple[str, ...]]:
    escaped, quotes = _helper(_PLAIN, string, quote_types=list(quote_types),
                              escape_special_whitespace=escape_special_whitespace)
    return escaped, tuple(quotes)


if _Unparser is not None and _helper is not None:
    class _MemoUnparser(_Unparser):  # type: ignore[misc,valid-type]
        def _str_literal_helper(self, string: str, *, quote_types: Any = ast._ALL_QUOTES,  # type: ignore[attr-defined]
                                escape_special_whitespace: bool = False) -> tuple[str, list[str]]:
            if len(string) < MIN_MEMO_CHARS or type(string) is not str:
                return _helper(self, string, quote_types=quote_types,
                               escape_special_whitespace=escape_special_whitespace)  # type: ignore[no-any-return]
            escaped, quotes = _literal(string, tuple(quote_types), escape_special_whitespace)
            return escaped, list(quotes)  # a list of its own, as ast's helper returns

    _PLAIN = _Unparser()

    def unparse(node: ast.AST) -> str:
        """``ast.unparse(node)``."""
        return _MemoUnparser().visit(node)  # type: ignore[no-any-return]
else:  # pragma: no cover - an ast without the helper
    _PLAIN = None
    unparse = ast.unparse
