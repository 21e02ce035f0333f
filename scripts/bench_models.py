#!/usr/bin/env python
"""Training speed of every registered model: forward+backward events/s and peak memory.

Synthetic events (uniform (eta, phi) in [-1, 1]^2, 3 log-scaled channel values, kNN graph
in (eta, phi)) of ``--nodes`` nodes each, batches of ``--batch`` events. Each model runs
the loss of its natural stage (``pretrain`` for autoencoders, ``finetune`` for
``multitask``, ``supervised`` for ``particlenet``) with default settings and default
tasks (label classification, plus m0 and pT regression for ``multitask``).

Timing is round-robin (each round runs one step of every model) so that load changes on a
shared machine affect all models alike. ``ops/step`` counts the tensor operations a step
dispatches to the device (ATen operators below autograd, forward and backward, views not
counted; on a GPU each is about one kernel launch): a measure of per-step launch overhead
that does not depend on the machine, counted during the first warm-up step. ``syncs/step``
counts those of them that make the host wait for a GPU (reading a value such as a maximum or
an output size back to the host); while the host waits it queues no work. Peak memory: CUDA:
``torch.cuda.max_memory_allocated`` during a model's step minus what was allocated before it; CPU: in a fresh subprocess per
model, peak resident set size during a step (Linux ``VmHWM``, reset after a warm-up step)
minus the RSS before it.
On a small shared CPU, ``--threads 1`` gives steadier figures than torch's default.

``--images``: events are jet images instead: ``--nodes`` distinct occupied pixels of a
125 x 125 lattice (pixel 0.0174 in eta and phi, Gaussian around the centre with a width of
6-12 pixels, as in the ML4SCI quark/gluon images), so the image models (``resnet15`` on the
dense image rebuilt from the nodes, ``sparse_conv_ae`` on the occupied pixels) see real
image geometry. ``--encoder-only`` times ``model.encode`` instead of the loss (forward and
backward of the pooled embedding: the encoder alone, no decoder or heads; for ``resnet15``
everything but its linear heads). ``--variant LABEL=NAME:{yaml mapping}`` adds a model with settings, e.g.
``'sparse_conv_cls=multitask:{encoders: [sparse_conv]}'`` (the sparse-convolution encoder
under the task heads, a classifier like ``resnet15``).

Examples::

    python scripts/bench_models.py                       # issue defaults: 300 nodes, k=16, batch 128
    python scripts/bench_models.py --batch 16 --steps 3  # quick CPU run
    python scripts/bench_models.py --device cuda --amp   # on a GPU, bf16 autocast
    python scripts/bench_models.py --images --models resnet15 sparse_conv_ae \
        --variant 'sparse_conv_cls=multitask:{encoders: [sparse_conv]}'   # image models on 125x125 jets
    python scripts/bench_models.py --nodes 48 --batch 64 --threads 1 --steps 20 \
        --variant 'gt=multitask:{encoders: [masked_gt]}' \
        --variant 'gt_pairwise=multitask:{encoders: [masked_gt], masked_gt: {pairwise: true}}'  # cost of the pair biases
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def machine_description(device: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"CPU: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device == "cuda":
        text += f"; GPU: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return text


PIXEL = 0.0174  # eta, phi pixel size of the 125 x 125 ML4SCI jet images


def jet_pixels(nodes: int, g) -> "torch.Tensor":
    """(nodes, 2) (eta, phi) of ``nodes`` distinct pixels of a 125 x 125 image, around the centre."""
    import torch

    width = 6.0 + 6.0 * torch.rand(1, generator=g).item()
    cells = torch.empty(0, dtype=torch.long)
    while cells.numel() < nodes:
        rc = (62 + width * torch.randn(4 * nodes, 2, generator=g)).round().clamp(0, 124).long()
        cells = torch.unique(torch.cat([cells, rc[:, 0] * 125 + rc[:, 1]]))
    cells = cells[torch.randperm(cells.numel(), generator=g)[:nodes]]
    return (torch.stack([cells // 125, cells % 125], 1) - 62).float() * PIXEL


def make_batch(batch_size: int, nodes: int, k: int, seed: int = 0, images: bool = False):
    import torch
    from torch_geometric.data import Batch, Data

    from graphevent.nn.layers.knn import edge_features, knn_graph

    g = torch.Generator().manual_seed(seed)
    events = []
    for i in range(batch_size):
        pos = jet_pixels(nodes, g) if images else torch.rand(nodes, 2, generator=g) * 2 - 1
        x = torch.log1p(torch.empty(nodes, 3).exponential_(generator=g) * 10)
        ei = knn_graph(pos, None, k)
        events.append(
            Data(
                x=x, pos=pos, edge_index=ei, edge_attr=edge_features(pos, ei),
                y=torch.tensor([i % 2]), targets=torch.rand(1, 2, generator=g) * 100 + 50,
                event_id=torch.tensor([i]),
            )
        )
    return Batch.from_data_list(events)


INFO_KW = dict(
    node_features=["tracks", "ecal", "hcal"], classes=["quark", "gluon"], targets=["m0", "pt"],
    target_stats={"m0": {"mean": 100.0, "std": 30.0}, "pt": {"mean": 100.0, "std": 30.0}},
    pixel_size=(PIXEL, PIXEL), image_shape=(3, 125, 125),  # image models: the 125 x 125 jet images
    feature_transforms=["log1p"] * 3, feature_signed=[False] * 3,  # energies (the pair biases' pT)
)


def natural_stage(name: str, model) -> str:
    if model.supports_pretrain:
        return "pretrain"
    return "finetune" if model.encoder_modules() else "supervised"


def make_step(model, batch, stage: str, amp: bool, encoder_only: bool = False):
    """One training step: the model's loss for ``stage``, or with ``encoder_only`` the mean
    square of ``model.encode(batch)``'s pooled embedding (the encoder's forward and backward)."""
    import torch

    device_type = batch.x.device.type

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=amp):
            if encoder_only:
                loss = model.encode(batch)[1].float().square().mean()
            else:
                loss, _ = model.loss(batch, stage)
        loss.backward()

    return step


VIEW_LIKE = {"view", "_unsafe_view", "reshape", "t", "alias", "detach", "lift_fresh"}
# operators that, on a GPU, read a device value on the host and so wait for the device
# (item, an output size that depends on the values, bincount's range checks)
SYNC_OPS = {"_local_scalar_dense", "nonzero", "bincount", "masked_select", "_unique2", "unique_dim",
            "unique_consecutive"}


def _waits_for_device(func, args, kwargs) -> bool:
    import torch

    name = func.overloadpacket.__name__
    if name in SYNC_OPS:
        return True
    if name == "repeat_interleave":  # the output size is read on the host unless given
        return kwargs.get("output_size") is None
    if name in ("index", "index_put", "index_put_"):  # a boolean mask becomes indices: nonzero
        return any(getattr(i, "dtype", None) == torch.bool for i in args[1] if i is not None)
    return False


def count_ops(step) -> tuple[int, int]:
    """Tensor operations that one call of ``step`` dispatches to the device (forward and
    backward; views and view-like aliasing ops not counted), and how many of them make the
    host wait for the device on a GPU (:data:`SYNC_OPS`, boolean indexing, ``repeat_interleave``
    without ``output_size``, and ``Tensor.tolist``, which copies to the host below the dispatcher)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        ops = 0
        syncs = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if not func.is_view and func.overloadpacket.__name__ not in VIEW_LIKE:
                Counter.ops += 1
                Counter.syncs += _waits_for_device(func, args, kwargs)
            return func(*args, **kwargs)

    tolist = torch.Tensor.tolist

    def counted_tolist(self):
        Counter.syncs += 1
        return tolist(self)

    torch.Tensor.tolist = counted_tolist
    try:
        with Counter():
            step()
    finally:
        torch.Tensor.tolist = tolist
    return Counter.ops, Counter.syncs


def build(names, args):
    import torch

    from graphevent.data.info import DatasetInfo
    from graphevent.nn import build_model

    info = DatasetInfo(**INFO_KW, k=args.k)
    models = {}
    for name in names:
        torch.manual_seed(0)
        models[name] = build_model(model_spec(name, args), info).to(args.device).train()
    return models


def parse_variants(texts: list[str]) -> dict[str, dict]:
    """``LABEL=NAME:{yaml mapping}`` -> {label: {"name": NAME, **mapping}}."""
    import yaml

    out = {}
    for text in texts:
        label, _, spec = text.partition("=")
        name, _, rest = spec.partition(":")
        kwargs = yaml.safe_load(rest) if rest.strip() else {}
        if not label or not name or not isinstance(kwargs, dict):
            raise SystemExit(f"error: --variant {text!r}: expected LABEL=NAME:{{yaml mapping}}")
        out[label] = {"name": name, **kwargs}
    return out


def model_spec(name: str, args) -> dict:
    return parse_variants(args.variant).get(name, {"name": name})


def _peak_rss_bytes() -> int:
    """Peak RSS of this process: Linux ``VmHWM`` (resettable, not inherited from the parent
    like ``ru_maxrss`` is across exec), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak_rss() -> None:
    try:  # Linux: "5" resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def cpu_peak_memory(name: str, args) -> float:
    """Child process: one warm-up step, then peak RSS growth (MiB) during a second step."""
    import psutil

    batch = make_batch(args.batch, args.nodes, args.k, images=args.images).to(args.device)
    model = build([name], args)[name]
    step = make_step(model, batch, natural_stage(name, model), args.amp, args.encoder_only)
    step()
    rss_before = psutil.Process().memory_info().rss
    _reset_peak_rss()
    step()
    return max(_peak_rss_bytes() - rss_before, 0) / 2**20


def bench(names, args) -> list[dict]:
    """Round-robin timing: every round runs one step of each model, so load changes on a
    shared machine hit all models alike. CUDA peak memory is taken per model step."""
    import torch

    batch = make_batch(args.batch, args.nodes, args.k, images=args.images).to(args.device)
    models = build(names, args)
    steps = {n: make_step(m, batch, natural_stage(n, m), args.amp, args.encoder_only) for n, m in models.items()}
    cuda = args.device == "cuda"
    counts = {n: count_ops(step) for n, step in steps.items()}  # the first (untimed) warm-up step
    for _ in range(args.warmup - 1):
        for step in steps.values():
            step()
    elapsed = dict.fromkeys(names, 0.0)
    peak = dict.fromkeys(names, 0.0)
    for _ in range(args.steps):
        for n, step in steps.items():
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            t0 = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
                peak[n] = max(peak[n], (torch.cuda.max_memory_allocated() - base) / 2**20)
            elapsed[n] += time.perf_counter() - t0
    rows = []
    for n, m in models.items():
        rows.append({
            "model": n,
            "stage": "encode" if args.encoder_only else natural_stage(n, m),
            "parameters": m.num_parameters(),
            "ops_per_step": counts[n][0],
            "syncs_per_step": counts[n][1],
            "events_per_s": args.batch * args.steps / elapsed[n],
            "ms_per_step": 1000 * elapsed[n] / args.steps,
            "peak_mem_mib": peak[n] if cuda else None,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="registered names (default: all)")
    parser.add_argument("--batch", type=int, default=128, help="events per batch (default 128)")
    parser.add_argument("--nodes", type=int, default=300, help="nodes per event (default 300)")
    parser.add_argument("--k", type=int, default=16, help="neighbours (default 16)")
    parser.add_argument("--steps", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first, at least 1 (default 1)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda if available)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--images", action="store_true", help="jet-image events on a 125x125 lattice (see above)")
    parser.add_argument("--encoder-only", action="store_true",
                        help="time model.encode (forward + backward of the pooled embedding) instead of the loss")
    parser.add_argument("--variant", action="append", default=[], help="LABEL=NAME:{yaml mapping}: a model with settings")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error(f"--warmup {args.warmup} --steps {args.steps}: both must be >= 1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    if args.memory_of:
        print(json.dumps({"peak_mem_mib": cpu_peak_memory(args.memory_of, args)}))
        return 0

    from graphevent.nn import list_models

    variants = parse_variants(args.variant)
    names = (args.models or ([] if variants else list(list_models()))) + list(variants)
    unknown = sorted({model_spec(n, args)["name"] for n in names} - set(list_models()))
    if unknown:
        print(f"error: unknown model(s) {unknown}; registered: {list(list_models())}", file=sys.stderr)
        return 2
    print(f"# bench_models: {args.batch} events x {args.nodes} {'pixels of 125x125 jet images' if args.images else 'nodes'}, "
          f"k={args.k}, {args.steps} timed rounds "
          f"(+{args.warmup} warm-up), device={args.device}, amp={'bf16' if args.amp else 'off'}")
    print(f"# {machine_description(args.device)}")
    rows = bench(names, args)
    if args.device == "cpu":  # peak RSS needs a fresh process per model
        for r in rows:
            cmd = [sys.executable, os.path.abspath(__file__), "--memory-of", r["model"], "--device", "cpu",
                   "--batch", str(args.batch), "--nodes", str(args.nodes), "--k", str(args.k)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            if args.images:
                cmd += ["--images"]
            if args.encoder_only:
                cmd += ["--encoder-only"]
            for v in args.variant:
                cmd += ["--variant", v]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r["peak_mem_mib"] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mem_mib"]
    mem_label = "peak CUDA alloc MiB" if args.device == "cuda" else "peak RSS growth MiB"
    print(f"| model | stage | parameters | ops/step | syncs/step | events/s (fwd+bwd) | ms/step | {mem_label} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['stage']} | {r['parameters']:,} | {r['ops_per_step']:,} | {r['syncs_per_step']} | {r['events_per_s']:.1f} | "
              f"{r['ms_per_step']:.0f} | {r['peak_mem_mib']:.0f} |")
    for ref_name in ("particlenet", "resnet15"):
        ref = next((r for r in rows if r["model"] == ref_name), None)
        if ref:
            print(f"# events/s relative to {ref_name}: " + ", ".join(
                f"{r['model']} {r['events_per_s'] / ref['events_per_s']:.2f}x" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
