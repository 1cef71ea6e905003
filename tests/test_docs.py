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


def test_notebooks_are_stored_without_outputs_and_linked() -> None:
    """The docs build executes every notebook (myst-nb, execution forced),
    so stored outputs could only be stale; each one is in the table of
    contents, none calls Decrypt or Encrypt, and the rotation guide links
    the rotation notebook."""
    import json

    index = (DOCS / "index.md").read_text(encoding="utf-8")
    notebooks = sorted((DOCS / "notebooks").glob("*.ipynb"))

    assert notebooks
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert [] == [c["outputs"] for c in code if c["outputs"]], path.name
        assert {None} == {c["execution_count"] for c in code}, path.name
        source = "".join("".join(c["source"]) for c in code)
        assert not re.search(r"\.(de|en)crypt\(", source), path.name
        assert f"notebooks/{path.stem}\n" in index
    guide = (DOCS / "rotation.md").read_text(encoding="utf-8")
    assert "{doc}`notebooks/rotate-a-column`" in guide
