"""The tutorial notebook (docs/tutorial.ipynb) runs top to bottom, and it is what its jupytext
source (docs/tutorial.py, the file to edit) says.

The notebook is executed by nbclient in a kernel of this interpreter (a kernelspec written to a
temporary folder whose argv is `sys.executable -m ipykernel_launcher`, so no kernel installed on
the machine is picked up instead), with a temporary working directory; any error in any cell
fails the test. A few of its printed numbers are checked too.

After editing docs/tutorial.py, regenerate the notebook with its outputs (about 2 minutes):

    python tests/test_tutorial.py
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "docs" / "tutorial.py"
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
KERNEL = "icl-tutorial-python"
CELL_TIMEOUT_S = 300


def _kernel_manager(folder: Path, tmpdir: Path) -> KernelManager:
    """A kernel manager for a kernel of this very interpreter (same venv, same packages), with the
    inline matplotlib backend whatever MPLBACKEND the caller has, and `tmpdir` as its TMPDIR (the
    notebook trains into a `tempfile.mkdtemp` folder: under the test's tmp_path, not /tmp)."""
    spec_dir = folder / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (icl tutorial)",
        "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "TMPDIR": str(tmpdir)},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def execute(nb, workdir: Path, record_timing: bool = True):
    """Run every cell of `nb` in place, in a fresh kernel whose working directory is `workdir`;
    raises nbclient's CellExecutionError on the first cell that fails."""
    (workdir / "tmp").mkdir()
    client = NotebookClient(nb, km=_kernel_manager(workdir / ".kernelspec", workdir / "tmp"), timeout=CELL_TIMEOUT_S,
                            startup_timeout=120, record_timing=record_timing,
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return nb


def _cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in nb.cells]


def _printed(nb) -> str:
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def test_notebook_is_generated_from_its_source():
    """docs/tutorial.ipynb has the cells of docs/tutorial.py (regenerate it: see the module
    docstring), with the outputs of a clean top-to-bottom run, so it reads on GitHub."""
    source = jupytext.read(SOURCE)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert _cells(notebook) == _cells(source), "docs/tutorial.ipynb is stale: run `python tests/test_tutorial.py`"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert sum(out.output_type == "display_data" and "image/png" in out.data for cell in code for out in cell.outputs) >= 5


def test_notebook_runs_top_to_bottom(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    execute(notebook, tmp_path)
    printed = _printed(notebook)
    # the constructions equal GD to float64 rounding
    for found in re.findall(r"max \|.*?\| = (\S+)", printed):
        assert float(found) < 1e-12, printed
    assert len(re.findall(r"max \|.*?\| = ", printed)) == 3
    # the shipped model reproduces the held-out loss its summary recorded
    model, recorded = re.search(r"trained LSA layer\s+(\S+)\s+\(recorded in summary.json: (\S+)\)", printed).groups()
    assert model == recorded
    assert not list(tmp_path.glob("runs")), "the notebook must write its runs to a temporary folder only"
    assert len(list((tmp_path / "tmp").glob("icl-tutorial-*/*/summary.json"))) == 2  # the two runs it trained


if __name__ == "__main__":
    # Regenerate docs/tutorial.ipynb from docs/tutorial.py, executed, with outputs.
    nb = jupytext.read(SOURCE)
    with tempfile.TemporaryDirectory() as folder:
        execute(nb, Path(folder), record_timing=False)
    jupytext.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK.relative_to(ROOT)}")
