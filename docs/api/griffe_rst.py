"""Griffe extension: render the reStructuredText bits of cortex_fa docstrings.

The package's docstrings are NumPy style with a few RST constructs that
Markdown does not know. Before mkdocstrings renders a docstring, this
extension rewrites them:

- ``.. math::`` blocks become ``$$ ... $$`` display math (pymdownx.arithmatex);
- ``:math:`x``` becomes inline math ``\\(x\\)``;
- ``:class:`~a.b.C``` and the other Python roles become optional
  cross-references (a link when the target is documented, code otherwise);
- a paragraph ending in ``::`` loses one colon (the indented block after it is
  already a Markdown code block) and a lone ``::`` line is dropped;
- parameters documented together (``lr, momentum : float``) get their own
  default and, if the docstring gives no type, their own annotation from the
  signature (griffe copies the first name's to all of them).

It is loaded from ``mkdocs.yml`` (``plugins.mkdocstrings...options.extensions``).
"""

from __future__ import annotations

import re
from functools import cached_property

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(?P<target>[^`]+)`")
_MATH_ROLE = re.compile(r":math:`(?P<tex>[^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. math::\s*(?P<rest>.*)$")


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = m["indent"]
        body = [m["rest"].strip()] if m["rest"].strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        body = [b for b in body if b] or [""]
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$", ""]
    return "\n".join(out)


def _literal_markers(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        if line.strip() == "::":
            continue
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            line = line.rstrip()[:-1]
        lines.append(line)
    return "\n".join(lines)


def _autoref(obj: griffe.Object, target: str) -> str:
    shown_short = target.startswith("~")
    target = target.lstrip("~.").removesuffix("()")
    title = target.rsplit(".", 1)[-1] if shown_short else target
    identifier = target
    head, dot, rest = target.partition(".")
    if head != "cortex_fa":
        try:  # a name in the docstring's scope, e.g. LearningRule or LearningRule.feedback
            identifier = obj.resolve(head) + dot + rest
        except Exception:  # unknown name: leave it as written
            identifier = target
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


def convert(text: str, obj: griffe.Object | None = None) -> str:
    """Rewrite the RST constructs of one docstring (see the module docstring)."""
    text = _math_blocks(text)
    text = _MATH_ROLE.sub(lambda m: f"\\({m['tex']}\\)", text)
    text = _ROLE.sub(lambda m: _autoref(obj, m["target"]) if obj is not None else f"`{m['target'].lstrip('~')}`", text)
    return _literal_markers(text)


def _fix_parameters(docstring: griffe.Docstring, sections) -> None:
    try:
        signature = docstring.parent.parameters
    except Exception:  # modules, attributes: no signature
        return
    for section in sections:
        if section.kind.value not in ("parameters", "other parameters"):
            continue
        items = section.value
        for i, item in enumerate(items):
            try:
                param = signature[item.name]
            except (KeyError, TypeError):
                continue
            grouped = any(0 <= j < len(items) and items[j].description is item.description for j in (i - 1, i + 1))
            if param.default is not None:
                item.value = param.default
            if grouped and param.annotation is not None:
                item.annotation = param.annotation


class _Docstring(griffe.Docstring):
    @cached_property
    def parsed(self):
        sections = self.parse()
        _fix_parameters(self, sections)
        return sections


class RSTToMarkdown(griffe.Extension):
    """Convert docstrings once the whole package is loaded (names then resolve)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        seen: set[int] = set()

        def walk(obj):
            if id(obj) in seen or obj.is_alias:
                return
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)
                obj.docstring.__class__ = _Docstring
            for member in obj.members.values():
                if not member.is_alias:
                    walk(member)

        walk(pkg)
