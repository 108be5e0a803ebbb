"""The notebooks: each runs top to bottom in a real Jupyter kernel of this Python, from the
``notebooks/`` folder (as Jupyter starts it there), and every notebook in the repository
is stored without outputs."""

import os
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "xslicq-tests"
CELL_TIMEOUT_S = 600
SLOW = {"training_walkthrough.ipynb", "frontends.ipynb"}  # more than ~20 s each
NOT_SOURCE = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "outputs",
    "data_cache",
    "multirun",
    "build",
    "dist",
}


def notebook_params():
    return [
        pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])
        for p in sorted(NOTEBOOKS.glob("*.ipynb"))
    ]


def repository_notebooks() -> list[Path]:
    """Every ``.ipynb`` under the repository root, outside hidden, virtual-environment and
    output folders (``.ipynb_checkpoints`` is hidden)."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in NOT_SOURCE]
        found.extend(Path(folder) / f for f in files if f.endswith(".ipynb"))
    return sorted(found)


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> Path:
    """A kernel spec folder whose only kernel runs ``sys.executable`` (this venv's Python),
    whatever other kernels the machine has installed."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / KERNEL, overrides={"display_name": "xslicq tests"})
    return folder


def execute(
    notebook: Path, kernel_specs: Path, tmp_dir: Path | None = None
) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in a fresh kernel started in its folder (temporary files
    of the kernel under ``tmp_dir``); a failing cell raises
    ``nbclient.exceptions.CellExecutionError`` with the cell's traceback."""
    nb = nbformat.read(notebook, as_version=4)
    km = AsyncKernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_specs)])
    )
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT_S,
        allow_errors=False,
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the inline backend
    if tmp_dir is not None:
        env["TMPDIR"] = str(tmp_dir)
    client.execute(env=env)
    return nb


def outputs_of(nb, mime: str) -> list:
    return [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if mime in out.get("data", {})
    ]


def test_the_three_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert names >= {"slicqt_tour.ipynb", "training_walkthrough.ipynb", "frontends.ipynb"}, names


@pytest.mark.parametrize("notebook", notebook_params())
def test_notebook_runs_in_a_kernel(notebook, kernel_specs, tmp_path):
    nb = execute(notebook, kernel_specs, tmp_path)
    assert outputs_of(nb, "image/png"), f"{notebook.name} drew no figure"
    errors = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, errors


def test_repository_notebooks_are_found():
    found = repository_notebooks()
    assert set(NOTEBOOKS.glob("*.ipynb")) <= set(found) and found


@pytest.mark.parametrize("notebook", repository_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_stored_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{notebook.relative_to(ROOT)}: code cells {dirty} hold outputs or an "
        "execution count; clear them before committing (Jupyter: Edit > Clear "
        "Outputs of All Cells, then save)"
    )
