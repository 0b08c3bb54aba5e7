"""JSON from a client, read strictly: every way it can be wrong is `InvalidInput`.

Python's `json` accepts two things that later fail far from the parse: documents
nested deeper than the interpreter's recursion limit (a RecursionError, not a
ValueError) and `\\ud800`-style escapes of lone UTF-16 surrogates, which give a
`str` that cannot be encoded as UTF-8 again (tokenizers, responses and logs then
raise). Both are refused here, where the client's mistake can still be named.
"""

from __future__ import annotations

import json
import re
from typing import Any

from batchserve.errors import InvalidInput

# Only a body holding an escape in U+D800..U+DFFF can decode to a lone surrogate (raw
# surrogate bytes are invalid UTF-8 and fail the decode), so the walk below runs only
# for those; an escaped backslash before "ud8.." merely makes the walk run for nothing.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def load_json(data: bytes | bytearray, what: str = "the body") -> Any:
    """The document in `data` (UTF-8 JSON); InvalidInput naming `what` otherwise."""
    try:
        doc = json.loads(data)
    except RecursionError:
        raise InvalidInput(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(doc):
        raise InvalidInput(
            f"{what} holds a lone UTF-16 surrogate escape (such as \\ud800), which is not "
            "a character; send text as UTF-8 or as escaped surrogate pairs"
        )
    return doc


def _has_lone_surrogate(doc: Any) -> bool:
    """Whether any string (key or value) in `doc` cannot be encoded as UTF-8. Iterative:
    a document the parser took may still be deeper than a recursive walk can go."""
    pending = [doc]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
    return False
