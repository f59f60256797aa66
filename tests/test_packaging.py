"""The conda environment mirrors pyproject.toml, and the README's commands exist."""

import re
from pathlib import Path

import tomllib
import yaml

REPO = Path(__file__).resolve().parents[1]


def _names(requirements):
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_lists_every_dependency_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"])
    for reqs in project["optional-dependencies"].values():
        wanted |= {n for n in _names(reqs) if n != "deepdrift"}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    listed = set()
    for dep in env["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        listed |= _names([e for e in entries if not e.startswith("-")])
    assert wanted <= listed, f"missing from environment.yml: {sorted(wanted - listed)}"


def test_readme_commands_are_make_targets():
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    for target in re.findall(r"^make ([\w-]+)", readme, flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
    assert "make test" in readme and "make test" in (REPO / ".ci" / "run").read_text()


def test_import_is_light_and_plots_load_on_first_use():
    import subprocess
    import sys

    probe = (
        "import sys, deepdrift; heavy = [m for m in ('matplotlib', 'seaborn', 'typer') if m in sys.modules]; "
        "assert not heavy, heavy; from deepdrift import plot_drift_profile; assert 'matplotlib' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=REPO)


def test_package_is_typed():
    assert (REPO / "deepdrift" / "py.typed").is_file()
    assert "py.typed" in (REPO / "pyproject.toml").read_text()
