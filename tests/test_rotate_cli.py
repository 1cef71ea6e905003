"""The rotate and re-encrypt commands, against the local KMS over HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kms_reencrypt._cli import main


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Dummy credentials and a Region, and none of the user's files."""
    values = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEROTATECLI",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def keys(local_kms: Any) -> dict[str, str]:
    return {
        "source": local_kms.create_key()["KeyId"],
        "destination": local_kms.create_key()["KeyId"],
    }


def _write_input(
    local_kms: Any, source: str, path: Path, count: int, extra: str = ""
) -> None:
    kms = local_kms.kms_client()
    with path.open("w") as stream:
        for n in range(count):
            context = {"n": str(n)}
            blob = kms.encrypt(
                KeyId=source, Plaintext=b"p%d" % n, EncryptionContext=context
            )["CiphertextBlob"]
            record = {
                "id": f"row-{n}",
                "ciphertext": base64.b64encode(blob).decode(),
                "encryption_context": context,
            }
            stream.write(json.dumps(record) + "\n")
        stream.write(extra)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rotate(local_kms: Any, *args: str) -> int:
    return main(["rotate", "--endpoint-url", local_kms.endpoint_url, *args])


def test_rotate_writes_one_ok_line_per_item_and_exits_0(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """Every line is ok, under the destination, and decrypts."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 50)
    report = tmp_path / "report.json"

    status = _rotate(
        local_kms,
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(output),
        "--report",
        str(report),
    )

    lines = _lines(output)
    assert 0 == status
    assert 50 == len(lines)
    assert {"ok"} == {line["status"] for line in lines}
    kms = local_kms.kms_client()
    for line in lines[:5]:
        plaintext = kms.decrypt(
            CiphertextBlob=base64.b64decode(line["ciphertext"]),
            EncryptionContext=line["encryption_context"],
        )["Plaintext"]
        assert plaintext.startswith(b"p")
    assert 50 == json.loads(report.read_text())["ok"]


def test_bad_lines_are_failed_outcomes_naming_their_line_and_exit_1(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """Bad JSON, bad UTF-8, bad base64, wrong types and a missing id each
    fail alone with their line number; blank lines are skipped."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 3)
    with source.open("ab") as stream:
        stream.write(b"\n")  # line 4, blank
        stream.write(b"{not json\n")  # 5
        stream.write(b'{"id": "u", "ciphertext": "\xff\xfe"}\n')  # 6
        stream.write(b'{"id": "b", "ciphertext": "!!!"}\n')  # 7
        stream.write(b'{"id": "t", "ciphertext": 12}\n')  # 8
        stream.write(b'{"ciphertext": "AAAA"}\n')  # 9
        stream.write(
            b'{"id": "c", "ciphertext": "AAAA", "encryption_context": [1]}\n'
        )  # 10
        stream.write(b'{"id": "d", "ciphertext_blob": "AAAA"}\n')  # 11

    status = _rotate(
        local_kms,
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(output),
    )

    failed = {
        line["line"]: line["error"]
        for line in _lines(output)
        if line["status"] == "failed"
    }
    assert 1 == status
    assert [5, 6, 7, 8, 9, 10, 11] == sorted(failed)
    assert "CiphertextEncodingError" == failed[7]["code"]
    assert '"id" field is missing' in failed[9]["message"]
    # The Python API's name for the field, used in a file: the message
    # says which name a line takes.
    assert 'not "ciphertext_blob"' in failed[11]["message"]


def test_an_unknown_destination_stops_the_command_with_status_3(
    local_kms: Any,
    keys: dict[str, str],
    aws_env: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A systemic error ends the run early with exit status 3."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 40)

    status = _rotate(
        local_kms,
        "--to",
        "alias/missing",
        "--input",
        str(source),
        "--output",
        str(output),
    )

    assert 3 == status
    assert "stopped early" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--destination-context", '{"a": "b"}', "--no-destination-context"],
        ["--processes", "2", "--local"],
        ["--server-dry-run", "3"],
        ["--destination-context", "[1]"],
    ],
)
def test_contradictory_options_are_usage_errors(
    local_kms: Any,
    keys: dict[str, str],
    aws_env: Any,
    tmp_path: Path,
    extra: list[str],
) -> None:
    """Contradictory or malformed options exit with status 2."""
    source = tmp_path / "in.jsonl"
    source.write_text("")
    args = ["rotate", "--to", keys["destination"], "--input", str(source)]

    try:
        status = main([*args, *extra])
    except SystemExit as exit_:
        status = int(exit_.code or 0)

    assert 2 == status


def test_a_journal_for_another_destination_is_a_usage_error(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """Resuming with another destination is refused with status 2."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 3)
    common = ["--input", str(source), "--output", str(output)]
    _rotate(local_kms, "--to", keys["destination"], *common)

    assert 2 == _rotate(local_kms, "--to", keys["source"], *common)


def test_a_dry_run_writes_dry_run_lines_and_calls_nothing(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """--dry-run validates offline and sends no ReEncrypt."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 5)
    before = local_kms.stats.requests.get("ReEncrypt", 0)

    status = _rotate(
        local_kms,
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(output),
        "--dry-run",
    )

    assert 0 == status
    assert {"dry-run"} == {line["status"] for line in _lines(output)}
    assert before == local_kms.stats.requests.get("ReEncrypt", 0)


def test_a_killed_run_resumes_with_every_item_exactly_once(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """SIGKILL in the middle of a run, then the same command again: every
    id appears exactly once in the output, all ok."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 400)
    command = [
        sys.executable,
        "-m",
        "kms_reencrypt",
        "rotate",
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(output),
        "--endpoint-url",
        local_kms.endpoint_url,
        "--rate",
        "200",
    ]
    env = {**os.environ, **aws_env}

    child = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if output.exists() and output.stat().st_size > 20_000:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    with output.open("a") as stream:
        stream.write('{"id": "torn')  # a torn last line
    finished = subprocess.run(command, env=env, capture_output=True)

    ids = [line["id"] for line in _lines(output)]
    assert 0 == finished.returncode
    assert sorted(f"row-{n}" for n in range(400)) == sorted(ids)
    assert {"ok"} == {line["status"] for line in _lines(output)}


@pytest.mark.parametrize("output_format", ["base64", "json", "raw"])
def test_re_encrypt_prints_the_new_ciphertext_in_each_format(
    local_kms: Any,
    keys: dict[str, str],
    aws_env: Any,
    capsysbinary: pytest.CaptureFixture[bytes],
    output_format: str,
) -> None:
    """raw bytes, base64 text or the JSON response; each decrypts."""
    blob = local_kms.kms_client().encrypt(
        KeyId=keys["source"], Plaintext=b"one"
    )["CiphertextBlob"]

    status = main(
        [
            "re-encrypt",
            "--to",
            keys["destination"],
            "--ciphertext-b64",
            base64.b64encode(blob).decode(),
            "--output-format",
            output_format,
            "--endpoint-url",
            local_kms.endpoint_url,
        ]
    )

    out = capsysbinary.readouterr().out
    if output_format == "json":
        new = base64.b64decode(json.loads(out)["CiphertextBlob"])
    elif output_format == "base64":
        new = base64.b64decode(out.strip())
    else:
        new = out
    assert 0 == status
    assert (
        b"one"
        == (local_kms.kms_client().decrypt(CiphertextBlob=new)["Plaintext"])
    )


def test_re_encrypt_reads_a_raw_file_and_reports_kms_errors(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """--ciphertext-file takes raw bytes; a KMS error exits with 1."""
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x01\x02\x02\x00" + bytes(80))

    status = main(
        [
            "re-encrypt",
            "--destination-key-id",
            keys["destination"],
            "--ciphertext-file",
            str(path),
            "--endpoint-url",
            local_kms.endpoint_url,
        ]
    )

    assert 1 == status


def test_a_dry_run_never_overwrites_an_earlier_output(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """--dry-run with the --output of a finished run is a usage error:
    the file may hold the only copy of new ciphertexts."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 5)
    common = ["--input", str(source), "--output", str(output)]
    assert 0 == _rotate(local_kms, "--to", keys["destination"], *common)
    rotated = output.read_bytes()

    status = _rotate(
        local_kms, "--to", keys["destination"], *common, "--dry-run"
    )

    assert 2 == status
    assert rotated == output.read_bytes()
    # A new file, or standard output, is fine.
    fresh = tmp_path / "dry.jsonl"
    assert 0 == _rotate(
        local_kms,
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(fresh),
        "--dry-run",
    )
    assert {"dry-run"} == {line["status"] for line in _lines(fresh)}


def test_ctrl_c_prints_the_summary_exits_130_and_the_rerun_finishes(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """SIGINT mid-run: the calls in flight finish into the journal, the
    summary and the report say the run was interrupted, the status is
    130, and the same command again rotates the rest exactly once."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    report = tmp_path / "report.json"
    _write_input(local_kms, keys["source"], source, 300)
    command = [
        sys.executable,
        "-m",
        "kms_reencrypt",
        "rotate",
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(output),
        "--report",
        str(report),
        "--endpoint-url",
        local_kms.endpoint_url,
        "--rate",
        "100",
    ]
    env = {**os.environ, **aws_env}

    child = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if output.exists() and output.stat().st_size > 5_000:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)

    assert 130 == child.returncode, stderr
    assert "stopped early: interrupted" in stderr
    assert "run the same command again" in stderr
    first = json.loads(report.read_text())
    assert 0 < first["ok"] < 300
    assert first["stopped_reason"].startswith("interrupted")
    assert first["ok"] == len(_lines(output))

    finished = subprocess.run(command, env=env, capture_output=True)

    ids = [line["id"] for line in _lines(output)]
    assert 0 == finished.returncode
    assert sorted(f"row-{n}" for n in range(300)) == sorted(ids)


def test_refused_items_cost_no_call_and_no_rate_slot(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """Lines refused before sending are failed outcomes that the summary
    does not count as KMS calls (and the server never sees)."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    report = tmp_path / "report.json"
    empty = base64.b64encode(b"").decode()
    source.write_text(
        "".join(
            json.dumps({"id": f"r{n}", "ciphertext": empty}) + "\n"
            for n in range(5)
        )
    )
    before = local_kms.stats.requests.get("ReEncrypt", 0)

    status = _rotate(
        local_kms,
        "--to",
        keys["destination"],
        "--input",
        str(source),
        "--output",
        str(output),
        "--report",
        str(report),
    )

    assert 1 == status
    assert 5 == json.loads(report.read_text())["failed"]
    assert 0 == json.loads(report.read_text())["calls"]
    assert before == local_kms.stats.requests.get("ReEncrypt", 0)


def test_a_destination_arn_of_another_region_is_refused_up_front(
    local_kms: Any, keys: dict[str, str], aws_env: Any, tmp_path: Path
) -> None:
    """A key ARN in another Region than the client's fails every item
    alike, so it is a usage error before anything is read or sent."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_input(local_kms, keys["source"], source, 3)
    arn = f"arn:aws:kms:eu-west-1:111122223333:key/{keys['destination']}"
    before = local_kms.stats.requests.get("ReEncrypt", 0)

    status = _rotate(
        local_kms, "--to", arn, "--input", str(source), "--output",
        str(output),
    )  # fmt: skip

    assert 2 == status
    assert not output.exists() or not output.read_text()
    assert before == local_kms.stats.requests.get("ReEncrypt", 0)


def test_a_missing_extra_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    """Without cryptography (the ``local`` extra), ``demo`` says what to
    install and exits 2 instead of printing a traceback."""
    blocker = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from kms_reencrypt._cli import main\n"
        "sys.exit(main(['demo']))\n"
    )

    finished = subprocess.run(
        [sys.executable, "-c", blocker],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    assert 2 == finished.returncode
    assert "pip install 'kms_reencrypt[local]'" in finished.stderr
    assert "Traceback" not in finished.stderr
