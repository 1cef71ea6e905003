"""Sphinx configuration for the kms_reencrypt documentation."""

from __future__ import annotations

import kms_reencrypt

project = "kms_reencrypt"
author = "kms_reencrypt developers"
release = kms_reencrypt.__version__
version = release

extensions = [
    # myst-nb reads the Markdown pages (through myst-parser) and the
    # notebooks in notebooks/.
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "jupyter_execute"]
myst_heading_anchors = 3

# Every build runs every notebook from a fresh kernel against the local
# KMS; the notebooks are stored without outputs. A cell that raises fails
# the build, and so does anything a cell writes to standard error (a
# warning, or tqdm's text bar when ipywidgets is missing), since -W
# turns myst-nb's warning about it into an error.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 120
nb_execution_in_temp = True
nb_output_stderr = "warn"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# botocore ships no Sphinx inventory we can reach offline; its types are
# shown as plain names.
nitpicky = False
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "furo"
html_title = f"kms_reencrypt {release}"
