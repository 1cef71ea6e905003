"""The public surface: explicit, sorted, and nothing else."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

import kms_reencrypt
import kms_reencrypt.exceptions

# The public modules besides the root; each has its own __all__.
_SUBMODULES = (
    "kms_reencrypt.dask",
    "kms_reencrypt.exceptions",
    "kms_reencrypt.local",
    "kms_reencrypt.testing",
)


def _public_names(module: ModuleType) -> set[str]:
    """The names a user sees in dir(module) that are not private.

    Submodules of the package are left out (importing one binds its name
    in its parent), and so is ``annotations``, the compiler directive of
    ``from __future__ import annotations``. Every other name counts,
    imported helpers too: a module keeps them private with a ``_`` alias.
    """
    # dir() includes the names the module imports lazily, provided that
    # the module defines __dir__ to list them.
    return {
        name
        for name in dir(module)
        if not name.startswith(("_", "@"))
        and not getattr(getattr(module, name), "__name__", "").startswith(
            "kms_reencrypt."
        )
        and type(getattr(module, name)).__module__ != "__future__"
    }


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists exactly the public names of the package, sorted."""
    public = _public_names(kms_reencrypt) | {"__version__"}

    assert sorted(kms_reencrypt.__all__) == kms_reencrypt.__all__
    assert public == set(kms_reencrypt.__all__)


@pytest.mark.parametrize("name", _SUBMODULES)
def test_all_of_each_public_module_is_sorted_and_complete(name: str) -> None:
    """__all__ of each public submodule lists exactly its public names,
    sorted, as for the root."""
    module = importlib.import_module(name)

    assert sorted(module.__all__) == module.__all__
    assert _public_names(module) == set(module.__all__)


def test_every_exception_is_in_the_root_and_the_exceptions_module() -> None:
    """The exceptions module and the root export the same classes."""
    for name in kms_reencrypt.exceptions.__all__:
        obj = getattr(kms_reencrypt.exceptions, name)
        if isinstance(obj, type):
            assert obj is getattr(kms_reencrypt, name)


def test_importing_the_package_does_not_import_the_local_kms() -> None:
    """The core needs botocore, attrs and typing-extensions only."""
    import subprocess
    import sys

    code = (
        "import sys, kms_reencrypt; "
        "print(sorted(m for m in sys.modules if m.startswith("
        "('cryptography', 'kms_reencrypt.local', 'kms_reencrypt._rotate', "
        "'tqdm', 'boto3'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert "[]" == out.strip()
