"""Slider panels built from spec fields.

The panel is thin: each control sets one spec field, and a change calls a plain
function of the spec (`view(spec) -> Figure`), the same function the tests call
directly with several values.

A panel carries a PNG of its starting figure next to the live widget: JupyterLab
shows the widget, while a saved notebook, its HTML export and any viewer without a
kernel show the figure at the parameters' starting values (widget state needs a
script from a CDN and a live kernel to be more than a blank box).

>>> panel = explore(views.init_view, spec, init=None, depth=[2, 5, 10, 20])  # doctest: +SKIP
>>> panel                                                                     # doctest: +SKIP
"""
from __future__ import annotations

import base64
import functools
import html
import io
from typing import Any, Callable, Sequence

from .spec import CHECKS, CHOICES, Spec, SpecError


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
        CHECKS[name](name, o)
    # An option valid on its own may still clash with another control's value (adam
    # with momentum 0.9): the panel then says why instead of drawing (see explore).
    style = {"description_width": "initial"}
    if isinstance(value, str):
        return w.Dropdown(options=options, value=value, description=name, style=style)
    labels = [(f"{o:g}", o) for o in options]
    return w.SelectionSlider(options=labels, value=value, description=name, continuous_update=False,
                             style=style, layout=w.Layout(width="420px"))


def png_of(figure: Any) -> str | None:
    """A matplotlib figure as base64 PNG text (what a notebook stores), else None."""
    if not hasattr(figure, "savefig"):
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@functools.cache
def _panel_class() -> type:
    import ipywidgets as w

    class Panel(w.VBox):
        """A VBox whose output also holds a PNG of its starting figure."""

        snapshot: str | None = None
        caption: str = ""

        def _repr_mimebundle_(self, **kwargs: Any) -> dict:
            bundle = super()._repr_mimebundle_(**kwargs)
            if self.snapshot is not None:
                bundle["image/png"] = self.snapshot
                # A page without a kernel (the HTML export) shows this figure with a caption that
                # says what it is and how to make the sliders work; JupyterLab shows the widget.
                bundle["text/html"] = (
                    f'<figure><img src="data:image/png;base64,{self.snapshot}" alt="{html.escape(self.caption)}"/>'
                    f"<figcaption>{html.escape(self.caption)} The sliders redraw this figure with a live "
                    "kernel: open the notebook in JupyterLab (<code>make lab</code>) and run it.</figcaption>"
                    "</figure>")
            return bundle

    return Panel


def explore(view: Callable[[Spec], Any], spec: Spec, **fields: Sequence[Any] | None):
    """A panel of controls (one per keyword: field=options, or None for all choices)
    over `view(spec.replace(...))`, shown below them and redrawn on every change."""
    import ipywidgets as w
    controls = {name: control(spec, name, options) for name, options in fields.items()}
    out = w.Output()

    def redraw(change: Any = None) -> Any:
        values = {name: c.value for name, c in controls.items()}
        try:
            result = view(spec.replace(**values))
        except SpecError as e:  # a combination of slider values the harness refuses
            result = w.HTML(f"<pre>not a valid combination: {html.escape(str(e))}</pre>")
        # Set the output as widget state rather than capturing it with `with out:`:
        # capture goes through the kernel's msg_id routing, which headless clients
        # (nbclient, so papermill and nbval) intermittently hang on (nbclient #312).
        out.outputs = ()
        out.append_display_data(result)
        return result

    for c in controls.values():
        c.observe(redraw, names="value")
    panel = _panel_class()([w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")), out])
    panel.snapshot = png_of(redraw())
    start = ", ".join(f"{name} {c.value:g}" if isinstance(c.value, float) else f"{name} {c.value}"
                      for name, c in controls.items())
    panel.caption = f"The panel at its starting values ({start})."
    return panel
