"""Slider panels built from spec fields.

The panel is thin: each control sets one spec field, and a change calls a plain
function of the spec (`view(spec) -> Figure`), the same function the tests call
directly with several values.

>>> panel = explore(views.init_view, spec, init=None, depth=[2, 5, 10, 20])  # doctest: +SKIP
>>> panel                                                                     # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from .spec import CHOICES, Spec, SpecError


def control(spec: Spec, name: str, options: Sequence[Any] | None = None):
    """One widget for one field, starting at the spec's value.

    Text fields get a dropdown (of `options`, or of every allowed value); number
    fields get a slider over `options`, which always includes the spec's own value.
    """
    import ipywidgets as w
    value = getattr(spec, name)
    if options is None:
        if name not in CHOICES:
            raise SpecError(name, options, "a list of values to offer (only text fields list their own)")
        options = CHOICES[name]
    options = list(options)
    if value not in options:
        options = sorted(options + [value]) if not isinstance(value, str) else options + [value]
    for o in options:  # a bad option fails here, not when a reader moves the slider
        spec.replace(**{name: o})
    style = {"description_width": "initial"}
    if isinstance(value, str):
        return w.Dropdown(options=options, value=value, description=name, style=style)
    labels = [(f"{o:g}", o) for o in options]
    return w.SelectionSlider(options=labels, value=value, description=name, continuous_update=False,
                             style=style, layout=w.Layout(width="420px"))


def explore(view: Callable[[Spec], Any], spec: Spec, **fields: Sequence[Any] | None):
    """A panel of controls (one per keyword: field=options, or None for all choices)
    over `view(spec.replace(...))`, shown below them and redrawn on every change."""
    import ipywidgets as w
    controls = {name: control(spec, name, options) for name, options in fields.items()}
    out = w.Output()

    def redraw(change: Any = None) -> None:
        values = {name: c.value for name, c in controls.items()}
        result = view(spec.replace(**values))
        # Set the output as widget state rather than capturing it with `with out:`:
        # capture goes through the kernel's msg_id routing, which headless clients
        # (nbclient, so papermill and nbval) intermittently hang on (nbclient #312).
        out.outputs = ()
        out.append_display_data(result)

    for c in controls.values():
        c.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")), out])
