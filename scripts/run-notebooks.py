"""Execute psychrnn's notebooks headless with the evcxr `rust` kernel and check them.

    python scripts/run-notebooks.py [--write | --out DIR] [--require-all] [NOTEBOOK ...]
    (default: notebooks/*.ipynb)
    python scripts/run-notebooks.py --warm

--warm only runs the notebooks' shared first cell (`:cache`, `:dep psychrnn`) in one kernel, so
evcxr's cache holds psychrnn's compiled dependencies (CI does this in the background while cargo
builds the crate).

Fails (exit 1) when a cell raises or prints an evcxr compile error, or when a notebook shows no
figure (no image/svg+xml or image/png output). With --write the executed notebooks, outputs
included, replace the committed ones; with --out DIR they are written to DIR instead. No per-cell
timeout: the first `:dep` builds psychrnn.
A notebook whose metadata says it requires libtorch runs only when the environment has it
(`source ~/.cache/psychrnn/libtorch/env.sh`); otherwise it is skipped, or with --require-all fails.
"""
import glob
import os
import sys
import time

import nbformat
from nbclient import NotebookClient


def figures(nb):
    return sum(
        1
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if any(m in out.get("data", {}) for m in ("image/svg+xml", "image/png"))
    )


def errors(nb):
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("name") == "stderr" and "error" in out.get("text", "").lower():
                found.append(f"cell {i}: {out.get('text').strip()[:2000]}")
    return found


def execute(nb, path):
    """Runs `nb` in a fresh `rust` kernel from `path`'s folder; returns its problems."""
    NotebookClient(nb, timeout=None, kernel_name="rust", allow_errors=True,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    return errors(nb)


def warm():
    """Runs the first code cell of notebooks/01 (`:cache`, `:dep psychrnn`) in a fresh kernel."""
    path = sorted(glob.glob("notebooks/*.ipynb"))[0]
    setup = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup.source + "\nuse psychrnn::prelude::*;")])
    t0 = time.time()
    problems = execute(nb, path)
    print(f"warm: {'ok' if not problems else 'FAILED'} in {time.time() - t0:.0f} s", flush=True)
    for p in problems:
        print(f"  {p}", flush=True)
    return 1 if problems else 0


def main(argv):
    if "--warm" in argv:
        return warm()
    out_dir = None
    if "--out" in argv:
        i = argv.index("--out")
        if i + 1 >= len(argv):
            print("run-notebooks: --out needs a directory", file=sys.stderr)
            return 2
        out_dir = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
        os.makedirs(out_dir, exist_ok=True)
    write = "--write" in argv
    require_all = "--require-all" in argv
    paths = [a for a in argv if not a.startswith("--")] or sorted(glob.glob("notebooks/*.ipynb"))
    has_libtorch = "LIBTORCH" in os.environ or "LIBTORCH_USE_PYTORCH" in os.environ
    failed = False
    start = time.time()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if nb.metadata.get("psychrnn", {}).get("requires") == "libtorch" and not has_libtorch:
            print(f"{path}: {'FAILED' if require_all else 'skipped'}: needs libtorch "
                  "(source ~/.cache/psychrnn/libtorch/env.sh)", flush=True)
            failed |= require_all
            continue
        t0 = time.time()
        problems = execute(nb, path)
        took = time.time() - t0
        if figures(nb) == 0:
            problems.append("no figure")
        status = "ok" if not problems else "FAILED"
        print(f"{path}: {status} in {took:.0f} s, {figures(nb)} figures", flush=True)
        for p in problems:
            print(f"  {p}", flush=True)
        failed |= bool(problems)
        if write:
            nbformat.write(nb, path)
        if out_dir:
            nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
    print(f"{len(paths)} notebooks in {time.time() - start:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
