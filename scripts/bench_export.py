#!/usr/bin/env python
"""Events/s on ONE CPU thread: the exported image model (ONNX Runtime) vs ``graphevent predict``.

For every exportable model (``graphevent.nn.export.exportable_models()``), at its shipped
experiment config's size (``graphevent/configs/experiments/<config>.yaml``):

1. the shipped sample (``graphevent/sample/qg_sample.h5``) is split into a training file
   (``--train-events``) and a raw file to score (``--events``); the training file is
   preprocessed with ``ml4sci_qg_hdf5`` (no node cap) and the model trained one epoch
   (the weights do not change the speed);
2. ``graphevent predict`` (``predict_files``: HDF5 read, preprocessing, kNN, the model;
   ``torch.set_num_threads(1)``, batch ``--batch``) scores the raw file;
3. ``graphevent export --format onnx`` (image input, the default) is run by ONNX Runtime with
   ``intra_op_num_threads = 1`` as ``docs/examples/onnx_image_consumer.py`` runs it
   (``score_file``: HDF5 read, events grouped by size, ``session.run`` per ``--batch`` images).

Both read the same raw file from the page cache (one untimed warm-up each); timed
alternately, best of ``--repeat`` each. Prints the machine (CPU model, cores, load average) and one row per model.
With ``--profile``, one more pass of the exported model under ONNX Runtime's profiler prints
where its kernel time goes: the front end's share (the nodes exported from ``ImageNodes``,
the ``nodes`` scope of the graph; nodes ONNX Runtime fuses or rewrites count as the model's)
and the op types with most time.

Examples::

    python scripts/bench_export.py                       # 256 events, every exportable model
    python scripts/bench_export.py --models particlenet --events 512
    python scripts/bench_export.py --batch 1 --events 128 --repeat 1 --profile
"""

from __future__ import annotations

import argparse
import ast
import collections
import importlib.util
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "graphevent" / "sample" / "qg_sample.h5"
CONSUMER = ROOT / "docs" / "examples" / "onnx_image_consumer.py"
#: the shipped experiment config each exportable model is benchmarked at (stage set to supervised)
CONFIGS = {"particlenet": "particlenet", "multitask": "multitask_finetune", "resnet15": "resnet15"}



def profile(model_file: Path, run_file) -> str:
    """Where one pass of ``run_file(options)`` (ONNX Runtime session options) spends the exported
    model's kernel time: the front end's share and the op types with most time."""
    import onnx
    import onnxruntime as ort

    front = set()
    for node in onnx.load(str(model_file)).graph.node:
        scopes = {p.key: p.value for p in node.metadata_props}.get("pkg.torch.onnx.name_scopes")
        if scopes and ast.literal_eval(scopes)[1:2] == ["nodes"]:
            front.add(node.name)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(model_file.with_suffix(""))
    trace = Path(run_file(options))
    by_op, in_front = collections.Counter(), 0
    for record in json.loads(trace.read_text()):
        if record.get("cat") == "Node" and record["name"].endswith("_kernel_time"):
            by_op[record["args"]["op_name"]] += record["dur"]
            in_front += record["dur"] if record["name"][: -len("_kernel_time")] in front else 0
    trace.unlink()
    total = sum(by_op.values())
    return (f"front end {in_front / total:.0%} of kernel time; op types: "
            + ", ".join(f"{op} {t / total:.0%}" for op, t in by_op.most_common(8)))


def split_sample(work: Path, train_events: int, events: int) -> tuple[Path, Path]:
    """Two ML4SCI-layout files cut from the shipped sample: training events, then events to score."""
    import h5py

    from graphevent.data.testing import write_ml4sci_hdf5

    with h5py.File(SAMPLE, "r") as f:
        arrays = {k: f[k][: train_events + events] for k in ("X_jets", "y", "m0", "pt")}
    train = write_ml4sci_hdf5(work / "train.h5", {k: v[:train_events] for k, v in arrays.items()})
    score = write_ml4sci_hdf5(work / "score.h5", {k: v[train_events:] for k, v in arrays.items()})
    return train, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=256, help="events scored per timing")
    parser.add_argument("--train-events", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64, help="events per model call (both)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", nargs="*", help="default: every exportable model")
    parser.add_argument("--profile", action="store_true", help="print where the exported model's time goes")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from graphevent.config.data import load_data_config
    from graphevent.data.preprocess import preprocess
    from graphevent.evaluate.export import export_run
    from graphevent.evaluate.predict import PredictOptions, predict_files
    from graphevent.nn.export import exportable_models
    from graphevent.train.run import TrainOptions, train
    from graphevent.train.rundir import cpu_name
    from graphevent.utils.timing import best_of

    spec = importlib.util.spec_from_file_location("onnx_image_consumer", CONSUMER)
    consumer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(consumer)
    torch.set_num_threads(1)
    models = args.models or exportable_models()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        work = Path(tmp)
        train_file, raw = split_sample(work, args.train_events, args.events)
        preprocess([train_file], load_data_config("ml4sci_qg_hdf5"), work / "ds")
        for name in models:
            config = ROOT / "graphevent" / "configs" / "experiments" / f"{CONFIGS[name]}.yaml"
            run = work / name
            train(TrainOptions(data=work / "ds", out=run, config=config, gpus=0, progress=False,
                               overrides=("stage=supervised", "train.epochs=1", "train.batch_size=32",
                                          "train.num_workers=0")))
            n = [0]

            def predict(n=n, name=name, run=run):
                out = work / f"{name}.parquet"
                r = predict_files(run, [raw], out, PredictOptions(device="cpu", batch_size=args.batch, overwrite=True))
                n[0] = r.events

            model_file = work / f"{name}.onnx"
            export_run(run, "onnx", model_file)

            def open_session(options, model_file=model_file):
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
                return session, json.loads(session.get_modelmeta().custom_metadata_map["graphevent"])

            session, meta = open_session(ort.SessionOptions())

            def onnx(session=session, meta=meta):
                consumer.score_file(session, meta, str(raw), batch=args.batch)

            # alternated, the best of --repeat each: a load that drifts (a shared machine) meets both alike
            predict()
            onnx()  # warm-ups
            t_predict = t_onnx = float("inf")
            for _ in range(args.repeat):
                t_predict = min(t_predict, best_of(predict, 1))
                t_onnx = min(t_onnx, best_of(onnx, 1))
            rows.append((name, n[0] / t_predict, n[0] / t_onnx))
            print(f"{name}: predict {n[0] / t_predict:,.0f} events/s, exported (onnxruntime) {n[0] / t_onnx:,.0f} events/s",
                  flush=True)
            if args.profile:

                def profiled(options, open_session=open_session):
                    session, meta = open_session(options)
                    consumer.score_file(session, meta, str(raw), batch=args.batch)
                    return session.end_profiling()

                print(f"  {name} exported, batch {args.batch}: {profile(model_file, profiled)}", flush=True)

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"(at the end); torch {torch.__version__}, onnxruntime {ort.__version__}")
    print(f"{args.events} events of {SAMPLE.name}, batch {args.batch}, one thread, best of {args.repeat}\n")
    print("| model (config) | `graphevent predict` events/s | exported image model (onnxruntime) events/s | exported / predict |")
    print("|---|---:|---:|---:|")
    for name, p, o in rows:
        print(f"| {name} ({CONFIGS[name]}) | {p:,.0f} | {o:,.0f} | {o / p:.2f}x |")


if __name__ == "__main__":
    main()
