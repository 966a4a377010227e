"""Sphinx configuration of the microlearn documentation (``make docs``)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import microlearn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_for_docs

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

project = "microlearn"
author = "microlearn contributors"
copyright = "microlearn contributors, BSD-3-Clause"
release = microlearn.__version__ if hasattr(microlearn, "__version__") else "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "sphinxarg.ext",
    "matplotlib.sphinxext.plot_directive",
]
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 90)]

# The lessons live in notebooks/; they are copied here at every build and rendered with the
# outputs stored in them (never executed by Sphinx: `make test` executes them).
LESSONS = HERE / "lessons"
if LESSONS.exists():
    shutil.rmtree(LESSONS)
LESSONS.mkdir()
for nb in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
    shutil.copy2(nb, LESSONS / nb.name)
shutil.copy2(ROOT / "notebooks" / "INSTRUCTOR.md", LESSONS / "INSTRUCTOR.md")

nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_mock_imports = ["tensorflow", "keras"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = "microlearn"
suppress_warnings = ["mystnb.unknown_mime_type"]


# Docstrings write shapes as ``(*batch, N)`` (STYLE.md); in reST a bare ``*`` after "(" or
# ", " would open an emphasis, so escape it before numpydoc sees the text.
_STAR = re.compile(r"(?<=[(\[])\*(?=\w)|(?<=, )\*(?=\w)")


def _escape_shape_stars(app, what, name, obj, options, lines):
    lines[:] = [_STAR.sub(r"\\*", line) for line in lines]


def _skip_sklearn_routing(app, what, name, obj, skip, options):
    # scikit-learn generates set_*_request methods whose docstrings cite its own glossary
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _escape_shape_stars, priority=100)
    app.connect("autodoc-skip-member", _skip_sklearn_routing)
