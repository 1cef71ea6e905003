"""Development sessions: `nox -s demo`, `nox -s lint tests docs`,
`nox -s bench`.

Each session installs what it needs into its own virtualenv, so a fresh
machine with Python 3.11+ and pip needs nothing else.
"""

from __future__ import annotations

import glob

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["lint", "tests", "docs"]


@nox.session
def demo(session: nox.Session) -> None:
    """Rotate 200 data keys on the embedded local KMS and verify them."""
    session.install("-e", ".[local,cli]")
    session.run("kms-reencrypt", "demo", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite against the embedded local KMS."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        *(session.posargs or ["-q", "-p", "no:cacheprovider"]),
        env={"AWS_EC2_METADATA_DISABLED": "true"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (79 columns) and mypy --strict."""
    # Pinned: a new ruff or mypy release may add rules; upgrade on purpose.
    session.install(
        "-e", ".[test]", "ruff==0.17.6", "mypy==2.4.1", "botocore-stubs"
    )
    python = ["kms_reencrypt", "tests", "noxfile.py", "docs/conf.py"]
    session.run("ruff", "check", *python)
    # Only Python files: recent ruff also formats code blocks in Markdown,
    # where aligned comments are deliberate.
    session.run("ruff", "format", "--check", *python)
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with Sphinx; warnings are errors.

    myst-nb executes the notebooks in docs/notebooks on a fresh ipykernel
    against the local KMS; ipywidgets (the ``notebook`` extra) gives them
    the progress widget that Jupyter users see. pytest is there for the
    API reference of the fixtures in kms_reencrypt.testing, and the
    ``dask`` extra for that of kms_reencrypt.dask.
    """
    session.install(
        "-e",
        ".[local,notebook,dask]",
        "sphinx",
        "myst-nb",
        "ipykernel",
        "furo",
        "pytest",
    )
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        "docs",
        "docs/_build/html",
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark in tests/benchmarks and print their figures."""
    session.install("-e", ".[test]")
    for script in sorted(glob.glob("tests/benchmarks/bench_*.py")):
        session.log(f"--- {script}")
        session.run("python", script, *session.posargs)
