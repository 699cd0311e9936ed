"""Griffe extension for the API reference (docs/api.md): pricetune's
docstrings are numpy style with Sphinx cross-reference roles
(``:class:`~pricetune.reading.DataFileError```), which Markdown would print
as they stand. Each role becomes inline code of the name as Sphinx shows
it: the last component after a ``~``, the whole path otherwise.

mkdocstrings has no option for Sphinx roles in numpy docstrings, hence
these few lines.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def plain_roles(text: str) -> str:
    return _ROLE.sub(_code, text)


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(obj.docstring.value)
