"""``rotate-parquet``'s up-front checks: paths, client settings and the
input dataset are judged before a Dask cluster starts, anything is sent
or any file or directory is created.

No test here starts a cluster: ``distributed.LocalCluster`` and
``distributed.Client`` are replaced by a stand-in that raises
``ClusterStarted``, so a command that gets past its checks stops there,
and a refusal that came too late fails the test.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

import distributed
import pyarrow as pa
import pyarrow.parquet as pq

from kms_reencrypt._cli import main
from kms_reencrypt.local import LocalKms


class ClusterStarted(Exception):
    """The command got past its checks and asked for a Dask cluster."""


@pytest.fixture(scope="module")
def local_kms() -> Iterator[LocalKms]:
    """One local KMS for the module; its request count only grows."""
    with LocalKms() as kms:
        yield kms


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ClusterStarted

    monkeypatch.setattr(distributed, "LocalCluster", refuse)
    monkeypatch.setattr(distributed, "Client", refuse)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, local_kms: LocalKms) -> None:
    """Dummy credentials, the local KMS's Region and none of the user's
    AWS files."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPARQUETCLITESTS0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_kms.region)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory dataset ``in`` of two files, a one-file dataset
    ``file.parquet`` and a text file ``notes.txt``; the working
    directory."""
    table = pa.table(
        {
            "id": ["row-0", "row-1", "row-2", "row-3"],
            "blob": pa.array([bytes([n]) * 90 for n in range(4)], pa.binary()),
            "context": ['{"n": "0"}'] * 4,
        }
    )
    (tmp_path / "in").mkdir()
    pq.write_table(table.slice(0, 2), tmp_path / "in" / "a.parquet")
    pq.write_table(table.slice(2), tmp_path / "in" / "b.parquet")
    pq.write_table(table, tmp_path / "file.parquet")
    (tmp_path / "notes.txt").write_text("not a journal\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tree(root: Path) -> dict[str, str | None]:
    """Every path under ``root``: a file's SHA-256, None for a directory."""
    return {
        str(path.relative_to(root)): (
            hashlib.sha256(path.read_bytes()).hexdigest()
            if path.is_file()
            else None
        )
        for path in sorted(root.rglob("*"))
    }


def _argv(
    local_kms: LocalKms, *options: str, client: bool = True
) -> list[str]:
    argv = [
        "rotate-parquet",
        "--to",
        "alias/parquet-cli-destination",
        "--column",
        "blob",
        "--id-column",
        "id",
        "--context-column",
        "context",
    ]
    if client:
        argv += ["--endpoint-url", local_kms.endpoint_url]
    return argv + list(options)


def _refused(
    argv: list[str],
    local_kms: LocalKms,
    root: Path,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """Run ``argv``; check it is a usage error that sent and wrote
    nothing; return standard error."""
    before, requests = _tree(root), local_kms.stats.total_requests
    capsys.readouterr()

    status = main(argv)
    err = capsys.readouterr().err

    assert 2 == status, err
    assert "usage: kms-reencrypt rotate-parquet" in err
    assert "rotate-parquet: error: " in err
    assert "Traceback" not in err
    assert before == _tree(root)
    assert requests == local_kms.stats.total_requests
    return err


REPORT_ON_DATA: list[tuple[list[str], str]] = [
    (["--input", "file.parquet", "--output", "out"], "file.parquet"),
    (["--input", "in", "--output", "out"], "in/a.parquet"),
    (["--input", "in", "--output", "out"], "in/report.json"),
    (["--input", "in", "--output", "out"], "in"),
    (["--input", "in/*.parquet", "--output", "out"], "in/c.parquet"),
    (["--input", "in", "--output", "out"], "out"),
    (["--input", "in", "--output", "out"], "out/report.json"),
    (["--input", "in", "--output", "out"], "out.journal/report.json"),
    (
        ["--input", "in", "--output", "out", "--journal-dir", "j"],
        "j/report.json",
    ),
    (["--input", "in", "--output", "out"], "link-to-input"),
]


@pytest.mark.parametrize(
    ("options", "report"), REPORT_ON_DATA, ids=lambda v: str(v)
)
def test_a_report_on_the_input_output_or_journal_is_refused(
    local_kms: LocalKms,
    work: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    report: str,
) -> None:
    """Bug 1: the report, written last, would overwrite the input or land
    in a dataset or journal; it is refused up front, naming --report."""
    (work / "link-to-input").symlink_to(work / "in" / "a.parquet")
    argv = _argv(local_kms, *options, "--report", report)

    err = _refused(argv, local_kms, work, capsys)

    assert "--report" in err.splitlines()[-1]


UNUSABLE = ["", "x\0y", "x\ud800y"]


@pytest.mark.parametrize("value", UNUSABLE, ids=["empty", "nul", "surrogate"])
@pytest.mark.parametrize(
    "option", ["--input", "--output", "--journal-dir", "--report"]
)
def test_an_unusable_path_option_is_refused(
    local_kms: LocalKms,
    work: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
) -> None:
    """Bugs 2 and 3: an empty name, a NUL byte or a lone surrogate in any
    path option is a usage error naming the option; nothing is written,
    not even part.0.parquet into the working directory for --output ''."""
    paths = {
        "--input": "in",
        "--output": "out",
        "--report": "report.json",
        option: value,
    }
    argv = _argv(local_kms, *(part for pair in paths.items() for part in pair))
    if option == "--journal-dir":
        argv += ["--journal-dir", value]

    err = _refused(argv, local_kms, work, capsys)

    last = err.splitlines()[-1]
    assert f"{option} " in last
    assert "not a usable path" in last


@pytest.mark.parametrize(
    ("options", "journal"),
    [
        (["--input", "in", "--output", "out"], "notes.txt"),
        (["--input", "file.parquet", "--output", "out"], "file.parquet"),
        (["--input", "in", "--output", "out"], "in"),
        (["--input", "in", "--output", "out"], "out"),
    ],
    ids=["a-file", "the-input-file", "the-input-dir", "the-output"],
)
def test_a_journal_dir_that_is_a_file_or_a_dataset_is_refused(
    local_kms: LocalKms,
    work: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    journal: str,
) -> None:
    """Bug 4: a journal directory that exists as a file, or that is the
    input or the output, is a usage error naming --journal-dir."""
    argv = _argv(local_kms, *options, "--journal-dir", journal)

    err = _refused(argv, local_kms, work, capsys)

    assert "--journal-dir" in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("client", "option"),
    [
        (["--region", "no_such_region"], "--region"),
        (["--endpoint-url", "not a url"], "--endpoint-url"),
        (["--profile", "no-such-profile"], "--profile"),
        ([], "--region"),
    ],
    ids=["region", "endpoint", "profile", "no-region"],
)
def test_bad_client_settings_are_refused_before_a_cluster_starts(
    local_kms: LocalKms,
    work: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    client: list[str],
    option: str,
) -> None:
    """Bug 5: a client that cannot be built is a usage error naming the
    option, before out/ and out.journal/ exist or a cluster starts."""
    if not client:
        monkeypatch.delenv("AWS_DEFAULT_REGION")
    argv = _argv(
        local_kms, "--input", "in", "--output", "out", *client, client=False
    )

    err = _refused(argv, local_kms, work, capsys)

    last = err.splitlines()[-1]
    assert option in last
    assert "region_name" not in last


def _not_parquet(root: Path) -> None:
    (root / "empty").mkdir()
    (root / "bad").mkdir()
    (root / "bad" / "a.parquet").write_bytes(b"not parquet at all")
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("no parquet here\n")


@pytest.mark.parametrize(
    "source",
    ["empty", "notes", "bad", "bad/a.parquet", "notes.txt", "in/*.pq"],
)
def test_an_input_that_is_not_a_parquet_dataset_is_a_usage_error(
    local_kms: LocalKms,
    work: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
) -> None:
    """Bug 6: an empty dataset, a glob matching nothing or a file that is
    not Parquet is a usage error naming --input, not a traceback after
    a cluster started."""
    _not_parquet(work)
    argv = _argv(local_kms, "--input", source, "--output", "out")

    err = _refused(argv, local_kms, work, capsys)

    assert "--input" in err.splitlines()[-1]


@pytest.mark.parametrize(
    "options",
    [
        ["--input", "in", "--report", "out.json"],
        ["--input", "in", "--report", "in.json"],
        ["--input", "file.parquet", "--report", "reports/r.json"],
        ["--input", "in/*.parquet", "--report", "in/r.json"],
        ["--input", "in", "--journal-dir", "j", "--report", "out.journal"],
        ["--input", "in", "--journal-dir", "elsewhere/j"],
    ],
    ids=lambda options: " ".join(options),
)
def test_usable_options_pass_the_checks(
    local_kms: LocalKms,
    work: Path,
    options: list[str],
) -> None:
    """The checks refuse no more than they should: these commands get as
    far as starting the cluster, still having written nothing."""
    (work / "reports").mkdir()
    (work / "elsewhere").mkdir()
    before = _tree(work)
    argv = _argv(local_kms, *options, "--output", "out")

    with pytest.raises(ClusterStarted):
        main(argv)

    assert before == _tree(work)
