"""Sphinx configuration for the kms_reencrypt documentation."""

from __future__ import annotations

import kms_reencrypt

project = "kms_reencrypt"
author = "kms_reencrypt developers"
release = kms_reencrypt.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

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
