"""The documentation cannot drift from the code it describes."""

from __future__ import annotations

import re
from pathlib import Path

import kms_reencrypt
from kms_reencrypt import KmsReEncryptError

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _all_subclasses(sub)
    return found


def test_error_catalogue_has_a_section_per_exception_class() -> None:
    """docs/errors.md names every exception class, and nothing else."""
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### (\w+)$", text, flags=re.MULTILINE))
    classes = {
        cls.__name__
        for cls in _all_subclasses(KmsReEncryptError) | {KmsReEncryptError}
        if cls.__module__.startswith("kms_reencrypt")
    }

    assert classes == documented


def test_every_documented_exception_is_importable_from_the_root() -> None:
    """Users can import what the catalogue names."""
    text = (DOCS / "errors.md").read_text(encoding="utf-8")

    for name in re.findall(r"^### (\w+)$", text, flags=re.MULTILINE):
        assert isinstance(getattr(kms_reencrypt, name), type), name
