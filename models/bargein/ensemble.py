"""Combine barge-in classifiers into one ONNX model that averages them.

    .venv/bin/python models/bargein/ensemble.py MEMBER.onnx MEMBER.onnx ... [--out bargein_gru.onnx]

Members trained on the same data with different seeds or loss weights make different
mistakes: each takes some other knock or TV for a person, and their average believes fewer
of them (in the try of 2026-12-06, on validation with its shards, three members alone had
2, 6 and 4 false alarms and ducked 57, 34 and 49 times an hour; their mean had 2 and ducked
33 times; EXPERIMENTS.md tells why it was not shipped). The combined model keeps the members'
interface, so the device runs it as it runs one: features [1, 1, F] and state [layers, 1,
members x hidden] (the members' states side by side) -> probs [1, 1, 3] (the members' mean)
and state_out. It is checked against the members run one by one on a validation scenario,
and with the default --out its sha256 goes into models/manifest.toml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from device.listen.classifier import BargeInClassifier  # noqa: E402


def _dims(value_info) -> list[int]:
    return [d.dim_value for d in value_info.type.tensor_type.shape.dim]


def combine(members: list[onnx.ModelProto]) -> onnx.ModelProto:
    """One graph that runs every member on the same features and averages their probabilities."""
    inputs = [[_dims(i) for i in m.graph.input] for m in members]  # [features shape, state shape]
    if any(shapes != inputs[0] for shapes in inputs):
        sys.exit("members differ in their inputs: train them with the same --hidden, --layers and features")
    features_shape, (layers, batch, hidden) = inputs[0]
    k = len(members)
    nodes, initializers = [], []
    split = helper.make_tensor("state_split", TensorProto.INT64, [k], [hidden] * k)
    initializers.append(split)
    nodes.append(helper.make_node("Split", ["state", "state_split"], [f"m{i}_state_in" for i in range(k)], axis=2))
    for i, member in enumerate(members):
        graph = onnx.compose.add_prefix(member, f"m{i}_").graph
        rename = {f"m{i}_features": "features", f"m{i}_state": f"m{i}_state_in"}
        for node in graph.node:
            node.input[:] = [rename.get(name, name) for name in node.input]
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
    initializers.append(helper.make_tensor("members", TensorProto.FLOAT, [], [float(k)]))
    nodes.append(helper.make_node("Sum", [f"m{i}_probs" for i in range(k)], ["probs_sum"]))
    nodes.append(helper.make_node("Div", ["probs_sum", "members"], ["probs"]))
    nodes.append(helper.make_node("Concat", [f"m{i}_state_out" for i in range(k)], ["state_out"], axis=2))
    graph = helper.make_graph(
        nodes, "bargein_ensemble",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, features_shape),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [layers, batch, hidden * k])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 1, 3]),
         helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [layers, batch, hidden * k])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=members[0].opset_import, producer_name="models/bargein/ensemble.py")
    model.ir_version = members[0].ir_version
    onnx.checker.check_model(model)
    return model


def check(path: Path, member_paths: list[Path], sequence: np.ndarray) -> float:
    """Largest difference between the combined model and the mean of its members, frame by frame,
    each run as the device runs it (its state carried from frame to frame)."""
    combined, members = BargeInClassifier(path), [BargeInClassifier(p) for p in member_paths]
    error = 0.0
    for frame in sequence:
        combined.update_features(frame)
        for member in members:
            member.update_features(frame)
        mean = np.mean([member.probabilities for member in members], axis=0)
        error = max(error, float(np.abs(combined.probabilities - mean).max()))
    return error


def main() -> None:
    sys.path.insert(0, str(HERE))
    from train import MODEL, load, record_in_manifest  # needs torch, as training does

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", type=Path, nargs="+", help="classifiers from train.py (--out)")
    parser.add_argument("--out", type=Path, default=MODEL,
                        help="where to write the combined model (only the default path updates the manifest)")
    args = parser.parse_args()
    model = combine([onnx.load(str(p)) for p in args.members])
    onnx.save(model, str(args.out))
    val_x, _, _ = load("val", shards=False)
    error = check(args.out, args.members, val_x[0])
    if error > 1e-5:
        sys.exit(f"the combined model and its members disagree by {error}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB): the mean of {len(args.members)} members, "
          f"within {error:.1e} of them run one by one")
    if args.out.resolve() == MODEL.resolve():
        record_in_manifest(args.out)


if __name__ == "__main__":
    main()
