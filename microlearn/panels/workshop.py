"""The workshop dashboard: every panel in one set of tabs."""

from __future__ import annotations

import ipywidgets as widgets


def workshop(*, data_root=None, phantom_shape=None, glyphs: bool = True) -> widgets.Tab:
    """Tabs: compose, simulate, fit or learn, compare (one shared model composer).

    Parameters
    ----------
    data_root : path, optional
        Folder the panels may read HCP-layout datasets from.
    phantom_shape : tuple of 3 int, optional
        Grid of the built-in brain phantom (default
        :data:`microlearn.panels.fit_or_learn.PHANTOM_SHAPE`).
    glyphs : bool
        Show FURY glyphs in the composer.

    Returns
    -------
    ipywidgets.Tab
    """
    from .compare_panel import ComparePanel
    from .fit_or_learn import PHANTOM_SHAPE, FitOrLearn

    phantom_shape = PHANTOM_SHAPE if phantom_shape is None else phantom_shape
    from .common import refresh_models
    from .model_composer import ModelComposer
    from .signal_simulator import SignalSimulator

    composer = ModelComposer(glyphs=glyphs, data_root=data_root)
    fit_or_learn = FitOrLearn(data_root=data_root, phantom_shape=phantom_shape)
    compare = ComparePanel(data_root=data_root, phantom_shape=phantom_shape)
    # a spec saved in the composer appears in the other tabs' model lists at once
    composer.on_save.append(lambda path: refresh_models(fit_or_learn.model,
                                                        fit_or_learn.source.data_root))
    composer.on_save.append(lambda path: refresh_models(compare.model, compare.source.data_root))
    tabs = widgets.Tab(children=[
        composer,
        SignalSimulator(composer, data_root=data_root),
        fit_or_learn,
        compare,
    ])
    for i, title in enumerate(("1 compose", "2 simulate", "3 fit or learn", "4 compare")):
        tabs.set_title(i, title)
    tabs.add_class("ml-workshop")
    return tabs
