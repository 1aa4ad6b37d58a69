"""A griffe extension for the API pages: read an ``Example:`` docstring section as ``Examples:``.

The docstrings follow Google style with a singular ``Example:`` heading (what doctest and the
docstring tests read); griffe's Google parser only knows the plural, and would render the
doctest lines as plain text. Loaded by mkdocs.yml, never imported by the package.
"""
from __future__ import annotations

import re

import griffe

EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headings to ``Examples:`` before griffe parses them."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        """Rewrite the object's docstring once the object tree is complete."""
        if obj.docstring is not None:
            obj.docstring.value = EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
