"""`graphevent models` through the real CLI entry point."""

from graphevent.cli.app import main
from graphevent.data.info import DatasetInfo
from graphevent.nn import build_model
from graphevent.nn.registry import default_info, list_encoders


def run(capsys, *args):
    code = main(list(map(str, args)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_lists_every_registered_model_with_its_parameter_count(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert "Registered models, inputs: 3 features, 2 classes, targets m0, pt (default)" in out.splitlines()[0]
    for name in ("edgeconv_ae", "masked_gt_ae", "multitask", "particlenet"):
        count = sum(p.numel() for p in build_model({"name": name}, default_info()).parameters())
        assert name in out and f"{count:,}" in out
    assert "Registered encoders" in out
    rows = [[c.strip() for c in line.split("│")] for line in out.split("Registered encoders", 1)[1].splitlines()]
    lines = {r[1]: " ".join(r) for r in rows if len(r) > 2 and r[1] in list_encoders()}
    assert sorted(lines) == list(list_encoders())  # one row per registered encoder
    assert "edgeconv_ae" in lines["edgeconv"] and "no: its sparse convolutions" in lines["sparse_conv"]


def test_models_takes_input_sizes_from_a_dataset(capsys, tiny_dataset):
    code, out, _ = run(capsys, "models", "--data", tiny_dataset)
    assert code == 0 and "particlenet" in out
    count = sum(p.numel() for p in build_model({"name": "multitask"}, DatasetInfo.from_dir(tiny_dataset)).parameters())
    assert f"{count:,}" in out


def test_models_with_a_missing_dataset_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run(capsys, "models", "--data", tmp_path / "nope")
    assert code == 2
    assert "no manifest.json" in err and len(err.strip().splitlines()) == 1
