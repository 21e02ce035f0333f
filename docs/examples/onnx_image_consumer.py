"""Score detector images with a ``graphevent export`` ONNX file and ONNX Runtime alone.

No torch and no graphevent: the exported file holds the run's preprocessing (thresholds,
scales, HCAL collapse, positions, node cap, kNN) and says in its metadata what it takes and
what it returns. Needs numpy and onnxruntime, and h5py to read an HDF5 file (a ``.npy`` array
of images needs nothing more).

    graphevent export runs/pn --format onnx --out pn.onnx
    python onnx_image_consumer.py pn.onnx jets.h5 --out scores.csv
    python onnx_image_consumer.py pn.onnx images.npy --out scores.csv

Writes one row per event of the file (``index`` and one column per output value, named as
``graphevent predict`` names them: ``score_<class>``, ``pred_<task>``); NaN where an event has
no pixel above threshold. Events whose image holds a NaN or Inf pixel (the model's
``bad_input`` output; ``graphevent predict`` refuses such a file under ``bad_values: fail``) are
left out and listed on stderr. Without ``--out`` it prints the first rows.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import onnxruntime as ort


def open_model(path: str, threads: int = 1) -> tuple[ort.InferenceSession, dict]:
    """The ONNX Runtime session of an exported file and its graphevent metadata."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    if props.get("input") != "image":
        sys.exit(f"{path}: not an image-input graphevent export (input: {props.get('input')!r}); "
                 "export it with `graphevent export RUN --format onnx` (--input image)")
    return session, json.loads(props["graphevent"])


#: the output that flags events with non-finite input values (files exported before it have none)
BAD_INPUT = "bad_input"


def column_names(meta: dict) -> list[tuple[str, list[str]]]:
    """Per score output, the names of its columns: ``score_<class>`` (``<task>_score_<class>``
    with several classification tasks) or ``pred_<task>``."""
    scores = [o for o in meta["outputs"] if o.startswith("score_")]
    out = []
    for name in meta["outputs"]:
        if name == BAD_INPUT:
            continue
        if name.startswith("score_"):
            prefix = f"{name[len('score_'):]}_" if len(scores) > 1 else ""
            out.append((name, [f"{prefix}score_{c}" for c in meta["classes"]]))
        else:
            out.append((name, [name]))
    return out


def score_images(session: ort.InferenceSession, meta: dict, images: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Scores of a block of images, ``batch`` events per call, and ``bad_input`` (bool: the
    image held a NaN or Inf pixel, read as 0 by the model).

    The model pads every event of a call to the call's largest one, so events of similar
    size are scored together: ordered by their number of nonzero pixel values (a cheap
    stand-in for their node count), scored, and put back in file order. The outputs do not
    depend on the grouping (padding is ignored), only the time does."""
    columns = column_names(meta)
    names = [name for name, _ in columns] + ([BAD_INPUT] if BAD_INPUT in meta["outputs"] else [])
    out = {c: np.empty(len(images), np.float32) for _, cols in columns for c in cols}
    out[BAD_INPUT] = np.zeros(len(images), bool)
    order = np.argsort(np.count_nonzero(images.reshape(len(images), -1), axis=1), kind="stable")
    for start in range(0, len(images), batch):
        rows = order[start:start + batch]
        x = np.ascontiguousarray(images[rows], dtype=np.float32)
        values = session.run(names, {"images": x})
        for (_, cols), value in zip(columns, values):
            value = value.reshape(len(x), -1)
            for i, c in enumerate(cols):
                out[c][rows] = value[:, i]
        if len(values) > len(columns):
            out[BAD_INPUT][rows] = values[-1] != 0
    return out


def score_file(session: ort.InferenceSession, meta: dict, path: str, key: str | None = None,
               batch: int = 64, block: int = 1024) -> dict[str, np.ndarray]:
    """Every event of an image file through the model, read ``block`` events at a time: an
    HDF5 file (its dataset ``key``, by default the one the run was trained on) or a ``.npy``
    array of images."""
    layout = meta["layout"]["images"]
    if path.endswith(".npy"):
        return score_array(session, meta, np.load(path, mmap_mode="r", allow_pickle=False), path, batch, block)
    import h5py

    key = key or layout["file_key"]
    with h5py.File(path, "r") as f:
        return score_array(session, meta, f[key], f"{path}: {key!r}", batch, block)


def score_array(session: ort.InferenceSession, meta: dict, images, name: str, batch: int, block: int) -> dict[str, np.ndarray]:
    """:func:`score_images` over an array-like of images (``block`` events read at a time)."""
    layout = meta["layout"]["images"]
    if list(images.shape[1:]) != layout["shape"][1:]:
        sys.exit(f"{name} has shape {images.shape}; the model takes {layout['shape']} ({layout['layout']})")
    parts = [score_images(session, meta, np.asarray(images[start:start + block]), batch) for start in range(0, images.shape[0], block)]
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]} if parts else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="ONNX file written by `graphevent export`")
    parser.add_argument("images", help="HDF5 file of images (N, H, W, C), or a .npy array of them")
    parser.add_argument("--key", help="the image dataset (default: the one the run was trained on)")
    parser.add_argument("--batch", type=int, default=64, help="events per call")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument("--out", help="write a CSV here")
    args = parser.parse_args(argv)
    session, meta = open_model(args.model, args.threads)
    scores = score_file(session, meta, args.images, args.key, args.batch)
    bad = scores.pop(BAD_INPUT, np.zeros(0, bool))
    if bad.any():
        print(f"{int(bad.sum())} of {len(bad)} events left out, NaN/Inf pixels (bad_input; graphevent predict refuses "
              f"such a file under bad_values: fail): index {', '.join(map(str, np.flatnonzero(bad)))}", file=sys.stderr)
    names = list(scores)
    index = np.arange(len(bad))
    table = np.column_stack([index[~bad]] + [scores[n][~bad] for n in names])
    if args.out:
        np.savetxt(args.out, table, delimiter=",", header=",".join(["index", *names]), comments="",
                   fmt=["%d"] + ["%.9g"] * len(names))
        print(f"{len(table)} events scored -> {args.out}")
    else:
        print(",".join(["index", *names]))
        for row in table[:10]:
            print(",".join([str(int(row[0]))] + [f"{v:.6g}" for v in row[1:]]))


if __name__ == "__main__":
    main()
