"""The public surface: explicit, sorted, and nothing else."""

from __future__ import annotations

import kms_reencrypt
import kms_reencrypt.exceptions


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists exactly the public names of the package, sorted."""
    # dir() includes the names the package imports lazily.
    public = {
        name
        for name in dir(kms_reencrypt)
        if not name.startswith(("_", "@"))
        and not getattr(
            getattr(kms_reencrypt, name), "__name__", ""
        ).startswith("kms_reencrypt.")
    } | {"__version__"}

    assert sorted(kms_reencrypt.__all__) == kms_reencrypt.__all__
    assert public == set(kms_reencrypt.__all__)


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
