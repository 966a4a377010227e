"""Build steps of the documentation site that Sphinx does not do by itself.

* :func:`copy_lessons` copies the lesson notebooks into the source tree with their
  solutions behind a toggle (and, when no widget manager is bundled, their widget outputs
  replaced by a note), extracts a thumbnail per lesson and writes the gallery page;
* :func:`write_api_pages` writes one API page per public module of microlearn;
* :func:`copy_mathjax` puts the MathJax copy of ``jupyter-server-mathjax`` next to the
  pages, so that equations typeset without a network;
* :func:`widget_manager` fetches the Jupyter widget manager for static pages once
  (``scripts/fetch_widget_manager.sh``, npm registry, pinned) and
  :func:`copy_widget_manager` puts it next to the pages, without its CDN default, so that
  the lessons' stored widgets render without a network.
"""

from __future__ import annotations

import base64
import importlib.util
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

#: Where the project's Binder links point (per-lesson links add ``?labpath=``).
BINDER = "https://mybinder.org/v2/gh/microlearn/microlearn/main"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_SNAPSHOT_NOTE = ("<p class=\"widget-snapshot-note\"><em>The panel above is a snapshot "
                        "of its stored state: its controls need a Python kernel. Run this "
                        "notebook in JupyterLab or Binder to move them.</em></p>")
WIDGET_NOTE = ("<p><em>Interactive panel: run this notebook in JupyterLab or Binder, or "
               "see the <a href=\"../dashboards/index.html\">dashboards</a> page.</em></p>")


def _summary(nb) -> tuple[str, str]:
    """Title and one-line summary of a lesson (its heading and "You will:" line)."""
    first = nb.cells[0].source
    title = re.search(r"^#\s+(.+)$", first, re.M).group(1).strip()
    m = re.search(r"You will:\s*(.+?)\*", first, re.S)
    summary = " ".join(m.group(1).split()) if m else ""
    return title, summary


def _thumbnail(nb, path: Path) -> bool:
    """Write the lesson's first figure as ``path``; False when it has none."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                path.write_bytes(base64.b64decode(png))
                return True
    return False


def copy_lessons(src: Path, dest: Path, keep_widgets: bool = True) -> list[dict]:
    """Copy ``src/[0-9]*.ipynb`` and the instructor guide to ``dest``, write the gallery.

    Parameters
    ----------
    src, dest : Path
        The lessons' folder and the copy's folder (emptied first).
    keep_widgets : bool
        Keep the stored widget views and state (the site bundles a widget manager); when
        False each widget output is replaced by a note pointing to the dashboards.

    Returns
    -------
    list of dict
        One entry per lesson: ``name``, ``title``, ``summary``, ``thumb`` (bool).
    """
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "thumbs").mkdir(parents=True)
    lessons = []
    for path in sorted(src.glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            tags = cell.metadata.get("tags", [])
            if "solution" in tags and "hide-input" not in tags:
                cell.metadata["tags"] = [*tags, "hide-input"]
            outputs = []
            for out in cell.get("outputs", []):
                if WIDGET_MIME not in out.get("data", {}):
                    outputs.append(out)
                elif keep_widgets:  # the stored state, then what the controls need
                    outputs += [out, nbformat.v4.new_output(
                        "display_data", data={"text/html": WIDGET_SNAPSHOT_NOTE})]
                else:
                    out["data"] = {"text/html": WIDGET_NOTE}
                    outputs.append(out)
            if "outputs" in cell:
                cell.outputs = outputs
        if not keep_widgets:
            nb.metadata.pop("widgets", None)
        nbformat.write(nb, dest / path.name)
        title, summary = _summary(nb)
        thumb = _thumbnail(nb, dest / "thumbs" / f"{path.stem}.png")
        lessons.append({"name": path.name, "title": title, "summary": summary,
                        "thumb": thumb})
    shutil.copy2(src / "INSTRUCTOR.md", dest / "INSTRUCTOR.md")
    _write_gallery(dest / "gallery.md", lessons)
    return lessons


def _write_gallery(path: Path, lessons: list[dict]) -> None:
    lines = ["# Lessons at a glance", "",
             "Each lesson: a thumbnail of its first figure, what you will do, the notebook "
             "to download, and a link that opens it on Binder (JupyterLab in the browser, "
             "nothing to install).", "",
             "```{list-table}", ":class: gallery", ":header-rows: 1",
             ":widths: 22 78", "", "* - ", "  - Lesson"]
    for les in lessons:
        stem = Path(les["name"]).stem
        image = f"![{les['title']}](thumbs/{stem}.png)" if les["thumb"] else ""
        lines += [f"* - {image}",
                  f"  - **[{les['title']}]({stem}.ipynb)**",
                  "",
                  f"    {les['summary']}",
                  "",
                  f"    {{download}}`Download the notebook <{les['name']}>` · "
                  f"[Open on Binder]({BINDER}?labpath=notebooks/{les['name']})"]
    lines += ["```", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def public_modules(package: str = "microlearn") -> list[str]:
    """Every importable module of ``package`` whose dotted name has no ``_`` part."""
    spec = importlib.util.find_spec(package)
    names = [package]
    for info in pkgutil.walk_packages(spec.submodule_search_locations, package + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return sorted(names)


def write_api_pages(dest: Path, package: str = "microlearn") -> list[str]:
    """One page per public module under ``dest`` and an index page grouping them."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    modules = public_modules(package)
    for name in modules:
        title = f"``{name}``"
        (dest / f"{name}.rst").write_text(
            f"{title}\n{'=' * len(title)}\n\n.. automodule:: {name}\n"
            "   :ignore-module-all:\n", encoding="utf-8")
    groups: dict[str, list[str]] = {}
    for name in modules:
        parts = name.split(".")
        groups.setdefault(".".join(parts[:2]) if len(parts) > 1 else name, []).append(name)
    lines = ["API reference", "=============", "",
             "Generated from the docstrings (numpydoc), one page per public module. SI units "
             "inside: b in s/m², diffusivities in m²/s, lengths in m, times in s.", ""]
    for group, names in groups.items():
        lines += [f"``{group}``", "-" * (len(group) + 4), "", ".. toctree::",
                  "   :maxdepth: 1", ""]
        lines += [f"   {n}" for n in names] + [""]
    (dest / "index.rst").write_text("\n".join(lines), encoding="utf-8")
    return modules


#: Strings of MathJax's accessibility extension that point to a CDN: the speech rule
#: engine's locale files and its XPath polyfill, both shipped next to it.
_MATHJAX_CDN_STRINGS = {
    "extensions/a11y/mathjax-sre.js": {
        '"https://cdn.jsdelivr.net/npm/speech-rule-engine@"+sre.Variables.VERSION+"/lib/'
        'mathmaps"': 'MathJax.Ajax.config.root+"/extensions/a11y/mathmaps"',
        '"https://cdn.jsdelivr.net/npm/wicked-good-xpath@1.3.0/dist/wgxpath.install.js"':
        'MathJax.Ajax.config.root+"/extensions/a11y/wgxpath.install.js"'}}


def _replace_in(path: Path, replacements: dict[str, str]) -> None:
    """Replace each key of ``replacements`` in ``path``; fail when one is not there."""
    text = path.read_text(encoding="utf-8")
    for old, new in replacements.items():
        if old not in text:
            raise RuntimeError(f"{path} has no {old!r}: another version? Update the "
                               "replacements in docs/site_build.py.")
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def copy_mathjax(dest: Path) -> None:
    """Copy MathJax (from ``jupyter-server-mathjax``) to ``dest``, without CDN addresses."""
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (src / "MathJax.js").exists():
        raise RuntimeError(f"MathJax is missing from {src}; reinstall the docs extra "
                           "(make install).")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    for name, replacements in _MATHJAX_CDN_STRINGS.items():
        _replace_in(dest / name, replacements)


#: Strings of the widget manager bundle that point to a CDN, and what replaces them: the
#: default address of third-party widget modules (none is used by the lessons: a missing
#: one now fails locally instead of being fetched) and a commented-out font import.
_CDN_STRINGS = {'"https://cdn.jsdelivr.net/npm/"': '""',
                "/* @import url('https://fonts.googleapis.com/css?family=Roboto+Mono'); */":
                "/* (remote font import removed) */"}


def widget_manager(root: Path) -> Path | None:
    """Folder holding the widget manager's ``embed.js``, fetched once into ``.tools/``.

    Runs ``scripts/fetch_widget_manager.sh`` (a no-op when the cache is there). Returns
    None, with a message on stderr, when it cannot be had (no npm): the site then shows a
    note in place of each widget.
    """
    proc = subprocess.run(["bash", str(root / "scripts" / "fetch_widget_manager.sh")],
                          capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.strip() + "\n"
                         "site_build: widget manager not bundled; widget outputs become a "
                         "note.\n")
        return None
    return root / proc.stdout.strip().splitlines()[-1]


def copy_widget_manager(src: Path, dest: Path) -> None:
    """Copy the widget manager in ``src`` to ``dest`` with its CDN addresses removed."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    _replace_in(dest / "embed.js", _CDN_STRINGS)
