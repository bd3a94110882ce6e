"""Small notebooks for tests that execute or report on notebooks."""
from __future__ import annotations

from pathlib import Path


def write_notebook(path: Path, *sources: str, lesson: str = "") -> Path:
    """A small notebook for tests: a `parameters` cell (profile, seed), then `sources`."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if lesson:
        nb.metadata["trainlab"] = {"lesson": lesson}
    params = nbformat.v4.new_code_cell('profile = "smoke"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else
                           nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path
