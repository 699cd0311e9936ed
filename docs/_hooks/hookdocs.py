"""Render the hook reference (``docs/hooks.md``) from the hook specifications.

The reference is generated from :mod:`pricetune.hookspecs` (the hooks, their
signatures and docstrings, the plugin API version), the registry a hook
receives and the component contracts of
:mod:`pricetune.components.contract`, so it cannot drift from the code::

    python docs/_hooks/hookdocs.py --write   # regenerate docs/hooks.md
    python docs/_hooks/hookdocs.py --check   # fail if it is out of date

It is a documentation tool, not part of the package: it lives with the
site's other build tools in ``docs/_hooks/`` (which the site excludes) and
imports the installed pricetune. pricetune's test suite runs the check.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path

# the command that runs this script, from the repository root
COMMAND = "python docs/_hooks/hookdocs.py"
# docs/hooks.md, wherever the script is run from
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "hooks.md"
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
_FIELD = re.compile(r"^([A-Za-z_][\w, ]*) : (.+)$")
_HEADING = re.compile(r"^-{3,}$")


def hook_specs() -> list:
    """The hook specification functions, in the order they are defined."""
    from pricetune import hookspecs

    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return [
        function
        for function in vars(hookspecs).values()
        if inspect.isfunction(function) and hasattr(function, marker)
    ]


def signature(function, name: str | None = None, drop_self: bool = False) -> str:
    """``name(arg: annotation, ...) -> annotation`` with annotations as written."""
    parameters = []
    seen_keyword_only = False
    for parameter in inspect.signature(function).parameters.values():
        if drop_self and parameter.name == "self":
            continue
        if parameter.kind is parameter.KEYWORD_ONLY and not seen_keyword_only:
            parameters.append("*")
            seen_keyword_only = True
        text = parameter.name
        if parameter.kind is parameter.VAR_POSITIONAL:
            text = f"*{text}"
        elif parameter.kind is parameter.VAR_KEYWORD:
            text = f"**{text}"
        if parameter.annotation is not parameter.empty:
            text += f": {_annotation(parameter.annotation)}"
        if parameter.default is not parameter.empty:
            text += f" = {parameter.default!r}"
        parameters.append(text)
    result = f"{name or function.__name__}({', '.join(parameters)})"
    returned = inspect.signature(function).return_annotation
    if returned is not inspect.Signature.empty:
        result += f" -> {_annotation(returned)}"
    return result


def _annotation(annotation) -> str:
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def markdown(docstring: str | None) -> str:
    """A numpydoc/reST docstring as Markdown: roles and double backticks
    become code, section underlines become bold headings, ``name : type``
    fields become list items and ``::`` blocks become fenced code."""
    if not docstring:
        return ""
    lines = inspect.cleandoc(docstring).splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() and _HEADING.match(following.strip()):
            out += [f"**{line.strip()}**", ""]
            index += 2
            continue
        if line.rstrip().endswith("::"):
            text = line.rstrip()[:-1].rstrip()
            if text and text != ":":
                out.append(_inline(text))
            block, index = _indented(lines, index + 1)
            out += ["", "```text", *block, "```", ""]
            continue
        field = _FIELD.match(line)
        if field and not line.startswith(" "):
            block, index = _indented(lines, index + 1)
            description = " ".join(part.strip() for part in block)
            item = f"- `{field.group(1)}` ({_inline(field.group(2))})"
            out.append(item + (f": {_inline(description)}" if description else ""))
            continue
        out.append(_inline(line.strip() if line.startswith("    ") else line))
        index += 1
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _indented(lines: list[str], index: int) -> tuple[list[str], int]:
    """The indented block starting at ``index`` (blank lines inside kept),
    dedented, and the index after it."""
    while index < len(lines) and not lines[index].strip():
        index += 1
    block = []
    while index < len(lines) and (
        lines[index].startswith(" ") or not lines[index].strip()
    ):
        block.append(lines[index])
        index += 1
    while block and not block[-1].strip():
        block.pop()
    return inspect.cleandoc("\n".join(block)).splitlines() if block else [], index


def _inline(text: str) -> str:
    text = _ROLE.sub(
        lambda match: (
            f"`{match.group(2).split('.')[-1]}`"
            if match.group(1)
            else f"`{match.group(2)}`"
        ),
        text,
    )
    return text.replace("``", "`")


def _methods(cls) -> list:
    """Public methods defined on ``cls`` itself, in definition order."""
    return [
        (name, value)
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.isfunction(value)
    ]


def render() -> str:
    """The whole of ``docs/hooks.md``."""
    from pricetune import hookspecs
    from pricetune.components import contract
    from pricetune.registry import ComponentRegistry

    parts = [
        "# Hook reference",
        "",
        "<!-- Generated from pricetune.hookspecs and pricetune.components.contract"
        f" by `{COMMAND} --write`; do not edit by hand. -->",
        "",
        f"Plugin API version: **{hookspecs.PLUGIN_API_VERSION}**"
        " (`pricetune.hookspecs.PLUGIN_API_VERSION`). A plugin declares the"
        " version it targets in the module its entry point names:",
        "",
        "```text",
        f'{hookspecs.PLUGIN_API_ATTRIBUTE} = "{hookspecs.PLUGIN_API_VERSION}"',
        "```",
        "",
        "and is skipped, with a message, when pricetune's major version differs"
        " or its minor version is older than the plugin's. See"
        " [plugins.md](plugins.md#versions-and-compatibility) for the policy and"
        " [plugin-tutorial.md](plugin-tutorial.md) for a walk-through.",
        "",
        "## Hooks",
        "",
        "Implement any of them in a plugin module with `@pricetune.hookimpl`;"
        " pluggy rejects a plugin that implements a hook not listed here.",
        "",
    ]
    for spec in hook_specs():
        parts += [
            f"### {spec.__name__}",
            "",
            "```text",
            signature(spec),
            "```",
            "",
            markdown(spec.__doc__),
            "",
        ]
    parts += [
        "## The registry a hook receives",
        "",
        f"`{ComponentRegistry.__module__}.ComponentRegistry`:"
        f" {markdown(ComponentRegistry.__doc__)}",
        "",
    ]
    for name, method in _methods(ComponentRegistry):
        parts += [
            f"### registry.{name}",
            "",
            "```text",
            signature(method, name=name, drop_self=True),
            "```",
            "",
            markdown(method.__doc__) or "(no description)",
            "",
        ]
    parts += [
        "## Component contracts",
        "",
        "The classes a plugin's components subclass, from"
        " `pricetune.components.contract`; [components.md](components.md)"
        " describes them with the built-ins.",
        "",
    ]
    for cls in (contract.Backbone, contract.Head, contract.Strategy):
        parts += [f"### {cls.__name__}", "", markdown(cls.__doc__), ""]
        for name, method in _methods(cls):
            parts += [
                f"#### {cls.__name__}.{name}",
                "",
                "```text",
                signature(method, name=name, drop_self=True),
                "```",
                "",
                markdown(method.__doc__) or "(no description)",
                "",
            ]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_PATH))
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the file")
    action.add_argument(
        "--check", action="store_true", help="exit 1 if the file is out of date"
    )
    args = parser.parse_args(argv)
    text = render()
    path = Path(args.path)
    if args.write:
        path.write_text(text)
        return 0
    if args.check:
        current = path.read_text() if path.is_file() else ""
        if current != text:
            print(
                f"{path} is out of date: run {COMMAND} --write",
                file=sys.stderr,
            )
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
