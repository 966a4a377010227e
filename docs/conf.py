"""Sphinx configuration of the microlearn documentation (``make docs``).

The site works offline: MathJax comes from the ``jupyter-server-mathjax`` package (docs
extra) and the Jupyter widget manager for static pages (``@jupyter-widgets/html-manager``)
from the npm registry at the first build (``scripts/fetch_widget_manager.sh``, cached in
``.tools/``); both are copied next to the pages, so equations typeset and the lessons'
stored widgets render without a network. Without npm, widget outputs become a note.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import microlearn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cli_for_docs, site_build

import site_build  # noqa: E402

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

# The lessons live in notebooks/; they are copied here at every build (solutions behind a
# toggle), with a gallery page, and rendered with the outputs and widget state stored in
# them (never executed by Sphinx: `make test` executes them). The API reference is one
# generated page per public module.
WIDGET_MANAGER = site_build.widget_manager(ROOT)
site_build.copy_lessons(ROOT / "notebooks", HERE / "lessons",
                        keep_widgets=WIDGET_MANAGER is not None)
site_build.write_api_pages(HERE / "api")

nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "remove"
# The widget manager's standalone bundle (no RequireJS), from _static/html-manager; only
# pages whose notebook stores widget state load it.
nb_ipywidgets_js = {"html-manager/embed.js": {}} if WIDGET_MANAGER else {}
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# MathJax 2.7 bundled by jupyter-server-mathjax, copied to _static/mathjax at build time.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]],
                               "displayMath": [["\\[", "\\]"]],
                               "processEscapes": True, "ignoreClass": "document",
                               "processClass": "math|output_area"},
                   "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web"},
                   "showMathMenu": False, "messageStyle": "none"}
myst_update_mathjax = False

# Command lines must be copyable: no "--" turned into an en dash anywhere.
smartquotes = False

autodoc_default_options = {"members": True}  # documented members only
autodoc_typehints = "none"
autodoc_mock_imports = ["tensorflow", "keras"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = "microlearn"
html_static_path = ["_static"]
html_css_files = ["site.css"]
suppress_warnings = ["mystnb.unknown_mime_type"]


# Docstrings write shapes as ``(*batch, N)`` (STYLE.md); in reST a bare ``*`` after "(" or
# ", " would open an emphasis, so escape it before numpydoc sees the text.
_STAR = re.compile(r"(?<=[(\[])\*(?=\w)|(?<=, )\*(?=\w)")


def _escape_shape_stars(app, what, name, obj, options, lines):
    lines[:] = [_STAR.sub(r"\\*", line) for line in lines]


_LITERAL = re.compile(r"(``.*?``)")


def _escape_bars(app, what, name, obj, options, lines):
    # |x − y| in prose is a norm, not a reST substitution reference (a substitution may
    # span lines); literals and tables (lines starting with | or +) are left alone
    def escape(line):
        if line.lstrip().startswith(("|", "+")):
            return line
        parts = _LITERAL.split(line)
        return "".join(p if p.startswith("``") else p.replace("|", "\\|") for p in parts)

    lines[:] = [escape(line) for line in lines]


def _skip_members(app, what, name, obj, skip, options):
    # scikit-learn generates set_*_request methods whose docstrings cite its own glossary
    if name.startswith("set_") and name.endswith("_request"):
        return True
    # dataclass fields and plain class attributes without a docstring of their own are
    # described in the class's "Attributes" section: an extra entry would be empty
    if what == "class" and not callable(obj) and not isinstance(obj, property):
        return True
    return None


def _copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        site_build.copy_mathjax(Path(app.outdir) / "_static" / "mathjax")
        if WIDGET_MANAGER is not None:
            site_build.copy_widget_manager(WIDGET_MANAGER,
                                           Path(app.outdir) / "_static" / "html-manager")


def setup(app):
    app.connect("autodoc-process-docstring", _escape_shape_stars, priority=100)
    app.connect("autodoc-process-docstring", _escape_bars, priority=101)
    app.connect("autodoc-skip-member", _skip_members)
    app.connect("build-finished", _copy_mathjax)
