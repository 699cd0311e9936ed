"""MkDocs hook: links from a page to files outside ``docs/`` (the
repository's README files, say) are not part of the site; render them as
the path in code rather than as a broken link."""

from __future__ import annotations

import posixpath
import re

_LINK = re.compile(r"\[([^\]]+)\]\((\.\./[^)#\s]+)(#[^)]*)?\)")


def on_page_markdown(markdown, page, config, files):
    def replace(match):
        target = posixpath.normpath(
            posixpath.join(posixpath.dirname(page.file.src_uri), match.group(2))
        )
        if not target.startswith(".."):
            return match.group(0)  # inside docs/: MkDocs checks it
        path = target.lstrip("./")
        text = match.group(1).strip("`")
        return f"`{path}`" if text == path else f"{match.group(1)} (`{path}`)"

    return _LINK.sub(replace, markdown)
