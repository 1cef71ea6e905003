"""Progress bars: the notebook widget when Jupyter can show it, a quiet
text bar when ipywidgets is missing.

The widget itself is exercised by the documentation build, which runs
docs/notebooks/*.ipynb in a real kernel with ipywidgets installed and
fails on anything a cell writes to standard error (tqdm's text bar
writes there).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A stand-in for a Jupyter kernel, as tqdm.autonotebook recognises one,
# with ipywidgets made impossible to import; it prints every warning
# raised, when it exits.
_KERNEL_WITHOUT_IPYWIDGETS = textwrap.dedent(
    """
    import atexit, sys, types, warnings

    recorder = warnings.catch_warnings(record=True)
    caught = recorder.__enter__()
    warnings.simplefilter("always")
    atexit.register(
        lambda: print("warnings:", [str(w.message) for w in caught])
    )
    shell = type("ZMQInteractiveShell", (), {})()
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    sys.modules["IPython"] = ipython
    sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
    sys.modules["ipywidgets"] = None
    """
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _KERNEL_WITHOUT_IPYWIDGETS + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_ipywidgets_a_notebook_gets_the_text_bar_quietly() -> None:
    """No warning, and a working text bar."""
    done = _run(
        textwrap.dedent(
            """
            from kms_reencrypt._progress import ProgressBar
            from kms_reencrypt import RotationOutcome, RotationStatus

            bar = ProgressBar.create(notebook=True, stream=sys.stdout)
            bar.update(RotationOutcome(id="a", status=RotationStatus.OK))
            bar.close()
            print()
            print(type(bar).__name__, "done")
            """
        )
    )

    assert 0 == done.returncode, done.stderr
    assert "" == done.stderr
    assert "1item" in done.stdout
    assert "ok=1" in done.stdout
    assert "warnings: []" in done.stdout


def test_the_stand_in_kernel_is_one_tqdm_auto_warns_about() -> None:
    """The stand-in above really looks like Jupyter to tqdm: asking
    tqdm.auto directly there warns, which is what the bar avoids."""
    done = _run("import tqdm.auto\n")

    assert 0 == done.returncode, done.stderr
    assert "warnings: ['IProgress not found" in done.stdout
