"""environment.yml and pyproject.toml list the same packages with the same pins."""
import re
import tomllib
from pathlib import Path

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
