"""Train a barge-in classifier on models/bargein/.cache/{train,val}.npz and export it to ONNX.

    .venv/bin/python models/bargein/train.py [--epochs 30] [--sound-weight 1] [--seed 0] [--out M.onnx]
    .venv/bin/python models/bargein/train.py --init M.onnx [--teacher M.onnx --learn-kind K] --out N.onnx
    (retrain.sh: --leave-out-kind room_knocks, then a fine-tune with --learn-kind room_knocks
    --val-also val-305000)
    .venv/bin/python models/bargein/train.py --restart-share 0.5 [--restart-at-resumption 0.5] --out N.onnx
    .venv/bin/python models/bargein/train.py --init M.onnx --teacher M.onnx --learn-split --out N.onnx
    .venv/bin/python models/bargein/train.py --hidden 128 --teacher M.onnx --learn-split --out N.onnx
    (a new, larger model learning from a smaller teacher)

The model: feature normalisation (from the training set), a linear layer, two GRU
layers and a 3-way softmax (nobody / a person talking to the device / a backchannel),
run one 32 ms frame at a time with its state carried by the caller. Exported to ONNX
(inputs features [1,1,F] and state [layers,1,H]; outputs probs [1,1,3] and state_out) and
checked against torch on a validation scenario; written to models/bargein/bargein_gru.onnx
with its sha256 in models/manifest.toml when --out is not given (ensemble.py averages
several such models into one, an experiment so far; see EXPERIMENTS.md). Needs torch
(training only; the device needs onnxruntime alone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from device.listen.features import MARGIN_INDEX, MEL_BANDS  # noqa: E402

MODEL = HERE / "bargein_gru.onnx"
CACHE = HERE / ".cache"
SOUNDS = ("tv", "music", "knocks")
HIDDEN = 64
# Feature groups (device/listen/features.py), for ablations.
GROUPS = {"raw_mic": slice(0, MEL_BANDS), "reference": slice(2 * MEL_BANDS, 3 * MEL_BANDS),
          "residual": slice(3 * MEL_BANDS, MARGIN_INDEX + 1), "unexplained": slice(4 * MEL_BANDS, 5 * MEL_BANDS)}


class BargeInNet(nn.Module):
    """Normalise -> linear+ReLU -> GRU -> softmax over 3 classes."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = HIDDEN, dropout: float = 0.2,
                 layers: int = 1, mask: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        # 0 for features the model must not see (ablations: --drop)
        self.register_buffer("mask", torch.ones(len(mean)) if mask is None else torch.tensor(mask, dtype=torch.float32))
        self.inp = nn.Linear(len(mean), hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 3)

    def fresh_state(self, batch: int) -> torch.Tensor:
        """The GRU's state at the start of a sequence, for `batch` sequences."""
        return torch.zeros(self.gru.num_layers, batch, self.gru.hidden_size)

    def forward(self, features: torch.Tensor, state: torch.Tensor):
        z = self.drop(torch.relu(self.inp((features - self.mean) / self.std * self.mask)))
        y, state_out = self.gru(z, state)
        return self.out(self.drop(y)), state_out


class Streaming(nn.Module):
    """One frame at a time, probabilities out: the exported form."""

    def __init__(self, net: BargeInNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, state: torch.Tensor):
        logits, state_out = self.net(features, state)
        return torch.softmax(logits, dim=-1), state_out


def from_onnx(path: Path, dropout: float = 0.2) -> BargeInNet:
    """The network of an ONNX model this script exported (its normalisation, weights and
    shape), to go on training it: --init. ONNX orders a GRU's gates (update, reset, new),
    torch (reset, update, new)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    grus = [node for node in model.graph.node if node.op_type == "GRU"]
    hidden = weights[grus[0].input[2]].shape[-1]
    net = BargeInNet(weights["net.mean"], weights["net.std"], hidden, dropout, len(grus), weights["net.mask"])
    inp, out = (next(n for n in model.graph.node if n.op_type == "MatMul" and n.output[0].startswith(f"/net/{name}/"))
                for name in ("inp", "out"))

    def gates(a: np.ndarray) -> torch.Tensor:
        z, r, n = np.split(a, 3, axis=0)
        return torch.tensor(np.concatenate([r, z, n]))

    state = {name: torch.tensor(weights[f"net.{name}"]) for name in ("mean", "std", "mask")}
    state |= {"inp.weight": torch.tensor(weights[inp.input[1]].T), "inp.bias": torch.tensor(weights["net.inp.bias"]),
             "out.weight": torch.tensor(weights[out.input[1]].T), "out.bias": torch.tensor(weights["net.out.bias"])}
    for layer, gru in enumerate(grus):
        w, r, b = (weights[name][0] for name in gru.input[1:4])
        state[f"gru.weight_ih_l{layer}"], state[f"gru.weight_hh_l{layer}"] = gates(w), gates(r)
        state[f"gru.bias_ih_l{layer}"], state[f"gru.bias_hh_l{layer}"] = gates(b[: 3 * hidden]), gates(b[3 * hidden :])
    net.load_state_dict(state)
    return net


def split_files(split: str, data_dir: Path = CACHE, shards: bool = True) -> list[Path]:
    """The files of a split and, with `shards`, its shards (<split>-*.npz), in a fixed order."""
    files = sorted(data_dir.glob(f"{split}.npz")) + (sorted(data_dir.glob(f"{split}-*.npz")) if shards else [])
    if not files:
        sys.exit(f"no {split} data in {data_dir}: run models/bargein/generate.py --split {split}")
    return files


def load(split: str, data_dir: Path = CACHE, shards: bool = True) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(features [N, T, F], labels [N, T], metadata) of a split and its shards (<split>-*.npz)."""
    xs, ys, metas = [], [], []
    for path in split_files(split, data_dir, shards):
        data = np.load(path)
        lengths = np.diff(data["offsets"])
        if len(set(lengths)) != 1:
            sys.exit(f"{path}: scenarios of different lengths; regenerate it")
        n, t = len(lengths), int(lengths[0])
        xs.append(data["features"].astype(np.float32).reshape(n, t, -1))
        ys.append(data["labels"].astype(np.int64).reshape(n, t))
        metas += [json.loads(m) for m in data["meta"]]
    return np.concatenate(xs), np.concatenate(ys), metas


def load_playing(split: str, data_dir: Path = CACHE) -> np.ndarray:
    """[N, T]: whether the device was playing in each frame, in load()'s order."""
    rows = []
    for path in split_files(split, data_dir):
        data = np.load(path)
        n = len(data["offsets"]) - 1
        rows.append(data["ref_active"].astype(bool).reshape(n, -1))
    return np.concatenate(rows)


def frame_weights(labels: np.ndarray, kinds: list[str], sound_weight: float = 1.0) -> np.ndarray:
    """Per-frame loss weights: people count more than silence, and their first frames most
    (the decision has to come within a few frames of the onset; so do those of a person
    after a backchannel); the frames of a scenario with a TV, music or knocks and nobody
    talking to the device weigh `sound_weight` (the sounds a device most often takes for a
    person)."""
    weights = np.where(labels == 0, 1.0, 2.5).astype(np.float32)
    for i, row in enumerate(labels):
        on, person = np.flatnonzero(row > 0), np.flatnonzero(row == 1)
        if len(on):
            weights[i, on[0] : on[0] + 6] = 5.0
        elif kinds[i] in SOUNDS:
            weights[i] = sound_weight
        if len(person):
            weights[i, person[0] : person[0] + 6] = 5.0
    return weights


def resumptions(playing: np.ndarray, pause: int = 5) -> list[list[int]]:
    """Per scenario, the frames where the device's voice comes back after `pause` or more
    frames of silence (where echo is most often taken for a person)."""
    out = []
    for row in playing.astype(bool):
        starts = np.flatnonzero(row[1:] & ~row[:-1]) + 1
        out.append([int(f) for f in starts if f >= pause and not row[f - pause : f].any()])
    return out


def restarted(net: BargeInNet, x: torch.Tensor, y: torch.Tensor, h0: torch.Tensor, share: float,
              rng: np.random.Generator, resumed: list[list[int]], at_resumption: float) -> torch.Tensor:
    """The batch's logits with the state of `share` of its scenarios restarted at one frame.

    The device restarts the state after a barge-in rejected for silence and when it starts
    an answer, and a person may talk a few frames later; from a fresh state at the start of
    every scenario alone the model learns to wait for half a second of evidence
    (bench/classifier_restart.py). Half of the batches restart one of their scenarios a few
    frames (1-31) before something starts: its first person (or first backchannel), or, in
    `at_resumption` of them, the device's voice coming back after a pause (so that a fresh
    state does not learn that whatever starts is a person); the others restart anywhere.
    `resumed`: the batch's resumptions()."""
    frames = x.shape[1]
    at = int(rng.integers(8, frames - 8))
    restart = rng.random(len(x)) < share
    labels = y.numpy()
    if rng.random() < 0.5:
        if rng.random() >= at_resumption:
            starts = [(i, int(np.flatnonzero(row == 1)[0] if (row == 1).any() else np.flatnonzero(row > 0)[0]))
                      for i, row in enumerate(labels) if (row > 0).any()]
        else:
            starts = [(i, f) for i, fs in enumerate(resumed) for f in fs]
        if starts:
            i, start = starts[rng.integers(len(starts))]
            at = int(np.clip(start - rng.integers(1, 32), 8, frames - 8))
            restart[i] = True
    first, state = net(x[:, :at], h0)
    keep = torch.tensor(~restart, dtype=state.dtype)[None, :, None]
    second, _ = net(x[:, at:], state * keep)
    return torch.cat([first, second], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=HIDDEN)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--sound-weight", type=float, default=1.0,
                        help="loss weight of the frames of a TV, music or knocks with nobody talking to the device")
    parser.add_argument("--drop", choices=sorted(GROUPS), action="append", default=[],
                        help="hide a feature group from the model (an ablation; export with --out)")
    parser.add_argument("--init", type=Path,
                        help="go on training this model (one this script exported) instead of a new one; "
                             "its normalisation and mask are kept (--drop does not apply)")
    parser.add_argument("--teacher", type=Path,
                        help="a model (one this script exported) whose probabilities the scenarios not of "
                             "--learn-kind learn instead of their labels: fine-tuning on a new kind of "
                             "scenario without unlearning what the teacher does on the others")
    parser.add_argument("--learn-kind", action="append", default=[],
                        help="with --teacher: a kind of scenario that learns from its labels")
    parser.add_argument("--learn-split", action="store_true",
                        help="with --teacher: wherever someone talks (a person or a backchannel, in any kind "
                             "of scenario), learn which of the two it is from the label, keeping the teacher's "
                             "p(nobody): what ducks the device and how readily stays the teacher's")
    parser.add_argument("--learn-talking", action="store_true",
                        help="with --teacher: wherever someone talks, learn the label outright (p(nobody) "
                             "too); the frames where nobody talks learn the teacher's probabilities")
    parser.add_argument("--restart-share", type=float, default=0.0,
                        help="share of each batch whose state restarts partway through (as the device "
                             "restarts it after a barge-in rejected for silence), half of the batches "
                             "a few frames before one scenario's person or the device's voice resuming")
    parser.add_argument("--restart-at-resumption", type=float, default=0.5,
                        help="with --restart-share: of the batches restarted before something starts, "
                             "the share restarted before the device's voice resumes (0: before a person only)")
    parser.add_argument("--leave-out-kind", action="append", default=[],
                        help="a kind of scenario in the training data not to train on (e.g. room_knocks, "
                             "kept for a fine-tune)")
    parser.add_argument("--val-also", action="append", default=[],
                        help="a validation shard whose scenarios the validation loss covers too (e.g. "
                             "val-305000); by default the loss is on the mixed validation split alone")
    parser.add_argument("--data", type=Path, default=CACHE, help="where generate.py wrote the splits")
    parser.add_argument("--out", type=Path, default=MODEL,
                        help="where to write the ONNX model (only the default path updates the manifest)")
    args = parser.parse_args()
    if (args.learn_kind or args.learn_split or args.learn_talking) and args.teacher is None:
        parser.error("--learn-kind, --learn-split and --learn-talking need --teacher (without one every scenario "
                     "learns its labels)")
    if args.learn_split and args.learn_talking:
        parser.error("--learn-split and --learn-talking are two ways to learn the same frames: choose one")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train_x, train_y, train_meta = load("train", args.data)
    kept = np.array([m["kind"] not in args.leave_out_kind for m in train_meta])
    if not kept.all():
        print(f"left out: {int((~kept).sum())} scenarios of {', '.join(args.leave_out_kind)}")
        train_x, train_y, train_meta = train_x[kept], train_y[kept], [m for m, k in zip(train_meta, kept) if k]
    # The validation loss is on the mixed split (and any --val-also shards); its other shards,
    # of nobody talking to the device, are for bench/classifier_eval.py's false alarms per hour.
    val_parts = [load(split, args.data, shards=False) for split in ["val", *args.val_also]]
    val_x, val_y = (np.concatenate([part[i] for part in val_parts]) for i in (0, 1))
    if args.init:
        net = from_onnx(args.init, args.dropout)
    else:
        mean = train_x.reshape(-1, train_x.shape[-1]).mean(axis=0)
        std = train_x.reshape(-1, train_x.shape[-1]).std(axis=0) + 1e-3
        mask = np.ones(train_x.shape[-1], dtype=np.float32)
        for group in args.drop:
            mask[GROUPS[group]] = 0.0
        net = BargeInNet(mean, std, args.hidden, args.dropout, args.layers, mask)
    params = sum(p.numel() for p in net.parameters())
    print(f"train {train_x.shape}, val {val_x.shape}; {params} parameters"
          + (f"; hidden from the model: {', '.join(args.drop)}" if args.drop else ""))

    x, y = torch.tensor(train_x), torch.tensor(train_y)
    resumed = resumptions(load_playing("train", args.data)[kept]) if args.restart_share > 0 else []
    w = torch.tensor(frame_weights(train_y, [m["kind"] for m in train_meta], args.sound_weight))
    teacher = from_onnx(args.teacher).eval() if args.teacher else None  # of any size: it has its own state
    # With a teacher, only the scenarios of --learn-kind learn from their labels.
    learns = torch.tensor([m["kind"] in args.learn_kind for m in train_meta])
    vx, vy = torch.tensor(val_x), torch.tensor(val_y)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    best, best_state = float("inf"), None
    for epoch in range(args.epochs):
        started = time.time()
        net.train()
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            h0 = net.fresh_state(len(idx))
            if args.restart_share > 0:
                logits = restarted(net, x[idx], y[idx], h0, args.restart_share, rng,
                                   [resumed[j] for j in idx], args.restart_at_resumption)
            else:
                logits, _ = net(x[idx], h0)
            target = y[idx].reshape(-1)
            if teacher is not None:  # the other kinds: learn what the teacher says of them
                with torch.no_grad():
                    taught = torch.softmax(teacher(x[idx], teacher.fresh_state(len(idx)))[0], dim=-1)
                labelled = nn.functional.one_hot(y[idx], 3).float()
                target = torch.where(learns[idx, None, None], labelled, taught)
                talking = (y[idx] > 0)[..., None]
                if args.learn_split:  # the teacher's p(talking), given to the labelled one of the two
                    split = torch.cat([taught[..., :1], taught[..., 1:].sum(-1, keepdim=True) * labelled[..., 1:]], -1)
                    target = torch.where(talking, split, target)
                elif args.learn_talking:
                    target = torch.where(talking, labelled, target)
                target = target.reshape(-1, 3)
            loss = (loss_fn(logits.reshape(-1, 3), target) * w[idx].reshape(-1)).mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()
        net.eval()
        with torch.no_grad():
            vlogits, _ = net(vx, net.fresh_state(len(vx)))
            vloss = loss_fn(vlogits.reshape(-1, 3), vy.reshape(-1)).mean().item()
            pred = vlogits.argmax(-1)
            recall = [(pred[vy == c] == c).float().mean().item() for c in range(3)]
        if vloss < best:
            best, best_state = vloss, {k: v.clone() for k, v in net.state_dict().items()}
        print(f"epoch {epoch + 1:2d}: train {total / len(x):.4f}  val {vloss:.4f}  frame recall "
              f"none {recall[0]:.3f} person {recall[1]:.3f} backchannel {recall[2]:.3f}  ({time.time() - started:.0f} s)",
              flush=True)
    net.load_state_dict(best_state)
    export(net, val_x[0], args.out)


def export(net: BargeInNet, check_sequence: np.ndarray, path: Path = MODEL) -> None:
    """Write the ONNX model, check it against torch frame by frame, record its sha256."""
    import onnxruntime

    streaming = Streaming(net).eval()  # the exporter restores this mode afterwards, recursively
    features, state = torch.zeros(1, 1, net.mean.shape[0]), net.fresh_state(1)
    torch.onnx.export(streaming, (features, state), str(path), input_names=["features", "state"],
                      output_names=["probs", "state_out"], opset_version=17, dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected, _ = streaming(torch.tensor(check_sequence[None]), net.fresh_state(1))
    s = net.fresh_state(1).numpy()
    got = []
    for frame in check_sequence:
        p, s = session.run(None, {"features": frame[None, None].astype(np.float32), "state": s})
        got.append(p[0, 0])
    error = np.abs(np.array(got) - expected[0].numpy()).max()
    if error > 1e-4:
        sys.exit(f"ONNX and torch disagree by {error}")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB); streaming ONNX matches torch within {error:.1e}")
    if path.resolve() == MODEL.resolve():
        record_in_manifest(path)


def record_in_manifest(path: Path) -> None:
    """Write the sha256 of the shipped classifier into models/manifest.toml."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = HERE.parent / "manifest.toml"
    text = manifest.read_text()
    text = re.sub(r'(\[models\.bargein_classifier\][^\[]*?sha256 = ")[0-9a-f]*(")', rf"\g<1>{digest}\g<2>", text)
    manifest.write_text(text)
    print(f"recorded its sha256 ({digest[:12]}...) in {manifest}")


if __name__ == "__main__":
    main()
