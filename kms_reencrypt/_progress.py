"""Progress bars for rotations, through tqdm when it is installed.

tqdm belongs to the ``cli`` extra; without it a bar is silently a no-op,
so that the library and the command work the same, only quieter.

From Python (``progress=True``) the bar is ``tqdm.auto``'s: the notebook
widget in Jupyter, a text bar elsewhere. The widget needs ipywidgets
(the ``notebook`` extra). Without it, ``tqdm.auto`` would warn in every
kernel that it cannot find ``IProgress`` and fall back to its text bar;
we pick that text bar directly instead, with a DEBUG line saying why,
because a missing optional widget is not worth a warning on every run.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import Any, TextIO

__all__ = ["ProgressBar"]

log = logging.getLogger(__name__)


class ProgressBar:
    """Counts outcomes on a tqdm bar, with ok and failed in its postfix.

    Args:
        bar: A tqdm bar, or None for a bar that shows nothing.
    """

    _POSTFIX_EVERY = 64

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar
        self._ok = 0
        self._failed = 0
        self._seen = 0

    @classmethod
    def create(
        cls,
        *,
        notebook: bool = False,
        stream: TextIO | None = None,
        total: int | None = None,
    ) -> ProgressBar:
        """Create a bar, or a silent one without tqdm.

        Args:
            notebook: Use ``tqdm.auto`` (the widget in Jupyter) when
                ipywidgets is installed, else the text bar.
            stream: Where a text bar goes; standard error by default.
            total: The number of items, when known.

        Returns:
            The bar.
        """
        try:
            if notebook and _has_ipywidgets():
                from tqdm.auto import tqdm
            else:
                if notebook:
                    log.debug(
                        "ipywidgets is not installed; a text progress bar "
                        "instead of the notebook widget"
                    )
                from tqdm import tqdm
        except ImportError:
            log.debug("tqdm is not installed; no progress bar")
            return cls(None)
        bar = tqdm(
            total=total,
            unit="item",
            file=stream or sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
        )

        return cls(bar)

    def update(self, outcome: Any) -> None:
        """Count one outcome.

        Args:
            outcome: A ``RotationOutcome``.
        """
        if self._bar is None:
            return
        self._seen += 1
        if str(outcome.status) == "failed":
            self._failed += 1
        elif str(outcome.status) == "ok":
            self._ok += 1
        self._bar.update(1)
        if self._seen % self._POSTFIX_EVERY == 0:
            self._bar.set_postfix(
                ok=self._ok, failed=self._failed, refresh=False
            )

    def close(self) -> None:
        """Show the final counts and close the bar."""
        if self._bar is None:
            return
        self._bar.set_postfix(ok=self._ok, failed=self._failed, refresh=False)
        self._bar.close()
        self._bar = None


def _has_ipywidgets() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # ValueError: blocked in sys.modules
        return False
