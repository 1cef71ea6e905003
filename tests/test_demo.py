"""The main job: `kms-reencrypt demo` rotates and verifies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kms_reencrypt._cli import main


def test_demo_rotates_and_verifies_every_item(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo exits 0 after verifying each re-encrypted data key."""
    status = main(["demo", "--count", "25"])

    out = capsys.readouterr().out
    assert 0 == status
    assert "verified 25/25" in out
    assert "calls/s" in out


def test_python_dash_m_runs_the_same_command() -> None:
    """`python -m kms_reencrypt` is the console script."""
    done = subprocess.run(
        [sys.executable, "-m", "kms_reencrypt", "demo", "--count", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert 0 == done.returncode, done.stderr
    assert "verified 3/3" in done.stdout


@pytest.mark.parametrize("argv", [["demo", "--count", "0"], ["nope"], []])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    """Bad options are usage errors, exit status 2."""
    with pytest.raises(SystemExit) as caught:
        main(argv)

    assert 2 == caught.value.code
