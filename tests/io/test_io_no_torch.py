"""The io package must stay importable without torch (readers run in light worker processes)."""

import subprocess
import sys


def test_io_does_not_import_torch():
    code = (
        "import sys\n"
        "import graphevent.io, graphevent.io.hdf5, graphevent.io.parquet, graphevent.io.root\n"
        "import graphevent.io.particles, graphevent.io.manifest\n"
        "print(sorted(m for m in ('torch', 'torch_geometric') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
