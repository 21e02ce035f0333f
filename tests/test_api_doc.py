"""The notebook example of docs/api.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.slow
def test_api_example_runs(tmp_path, capsys, one_torch_thread):
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 1 and "predict(model, event)" in blocks[0]
    code = blocks[0]
    assert code.count("Path(tempfile.mkdtemp())") == 1
    code = code.replace("Path(tempfile.mkdtemp())", "Path(WORK)")  # pytest's tmp_path, removed by pytest
    namespace: dict = {"WORK": str(tmp_path)}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102  (our own documentation)
    out = capsys.readouterr().out
    assert "particlenet:" in out and "64 events ->" in out
    scores, test = namespace["scores"], namespace["test"]
    assert set(scores) == {"score_quark", "score_gluon"} and len(scores["score_gluon"]) == len(test)
    np = namespace["np"]
    assert np.allclose(scores["score_quark"] + scores["score_gluon"], 1.0, atol=1e-5)
    assert (tmp_path / "pred.parquet").is_file() and (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
