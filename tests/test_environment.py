"""environment.yml and pyproject.toml list the same packages with the same pins."""
import json
import re
import subprocess
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    lines = (REPO / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\s*- pip:\s*$", line))
    pip = {line.strip()[2:].strip() for line in lines[start + 1:] if line.strip().startswith("- ")}
    pip.discard("-e .")
    assert pip == wanted
    assert "python=3.11" in (REPO / "environment.yml").read_text()


def test_license_is_an_spdx_string():
    import tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str)  # a TOML table makes setuptools warn on every install


def _git(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, **kw)


def test_notebook_outputs_never_reach_git(tmp_path):
    """`make install` sets up nbstripout as a git filter: what git stores of a notebook
    that only gained outputs, execution counts and the language details Lab writes is
    what it stores of the notebook as committed, and the committed notebooks are
    already in that stripped form (so a fresh checkout is clean)."""
    if _git("rev-parse", "--is-inside-work-tree").returncode:
        pytest.skip("not a git checkout: there is no history to keep outputs out of")
    assert _git("config", "filter.nbstripout.clean").stdout.strip(), "run `make install`: the filter is missing"
    for nb_path in sorted((REPO / "notebooks").glob("*.ipynb")):
        rel = str(nb_path.relative_to(REPO))
        stored = _git("hash-object", "--path", rel, str(nb_path)).stdout
        assert stored == _git("hash-object", "--no-filters", str(nb_path)).stdout, f"{rel} is not stripped"
        nb = json.loads(nb_path.read_text())
        for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
            cell["execution_count"] = i + 1
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["explored\n"]}]
        nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
        explored = tmp_path / nb_path.name
        explored.write_text(json.dumps(nb, indent=1))
        assert _git("hash-object", "--path", rel, str(explored)).stdout == stored, f"{rel}: outputs would be committed"
