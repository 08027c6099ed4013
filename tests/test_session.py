"""Execution providers: the one that really runs is reported; an unavailable request is refused with a fix."""

import numpy as np
import onnxruntime as ort
import pytest

from skin_infer.runtime import Classifier, DeviceError
from skin_infer.runtime.session import create_session, resolve_device


def test_cpu_runs_on_cpu(classifier_bundle):
    assert Classifier(classifier_bundle, device="cpu", threads=1).provider == "CPUExecutionProvider"


def test_auto_takes_the_best_available(classifier_bundle):
    providers = resolve_device("auto")
    assert providers[0] in ort.get_available_providers()
    assert Classifier(classifier_bundle, device="auto").provider == providers[0]


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_unavailable_cuda_says_what_to_install(classifier_bundle):
    with pytest.raises(DeviceError, match=r"pip install 'skin-infer\[gpu\]'"):
        Classifier(classifier_bundle, device="cuda")


def test_unknown_device():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def _int8_conv(shared_weight: bool):
    """A 1x1 QLinearConv whose products saturate a CPU's u8 x s8 instruction without VNNI (255 x 127 pairs), and
    the exact answer of the integer arithmetic. With ``shared_weight``, a DequantizeLinear also reads the weight
    (as the in-graph CAM reads the classifier's), which is what old exports look like."""
    from onnx import TensorProto, helper, numpy_helper

    channels, out, side = 64, 32, 8  # big enough for the CPU's blocked integer kernel
    rng = np.random.default_rng(0)
    weight = np.where(rng.random((out, channels, 1, 1)) < 0.5, 127, -128).astype(np.int8)
    init = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.array(1.0, np.float32), "s1"),
        numpy_helper.from_array(np.array(0, np.uint8), "zx"),
        numpy_helper.from_array(np.array(0, np.int8), "zw"),
        numpy_helper.from_array(np.array(16384.0, np.float32), "sy"),
        numpy_helper.from_array(np.array(128, np.uint8), "zy"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s1", "zx"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "s1", "zx", "w", "s1", "zw", "sy", "zy"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if shared_weight:
        nodes.append(helper.make_node("DequantizeLinear", ["w", "s1", "zw"], ["wf"]))
        outputs.append(helper.make_tensor_value_info("wf", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, side, side])], outputs, init
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.integers(200, 256, (1, channels, side, side)).astype(np.float32)
    exact = np.einsum("oc,nchw->nohw", weight[:, :, 0, 0].astype(np.int64), x)
    return model, x, np.clip(np.round(exact / 16384), -128, 127) * 16384


def test_int8_answers_are_the_exact_integer_arithmetic_on_every_cpu(tmp_path):
    import onnx

    model, x, exact = _int8_conv(shared_weight=False)
    onnx.save(model, tmp_path / "conv.onnx")
    y = create_session(tmp_path / "conv.onnx", "cpu", 1).run(["y"], {"x": x})[0]
    np.testing.assert_allclose(y, exact, atol=16384)  # within one output step (rounding)


def test_old_int8_graphs_with_shared_weights_still_load_and_export_unshares_them(tmp_path, caplog):
    import onnx

    from skin_infer.export.optimize import unshare_quantized_weights
    from skin_infer.runtime.session import _options

    model, x, exact = _int8_conv(shared_weight=True)
    onnx.save(model, tmp_path / "old.onnx")
    try:  # only a CPU without VNNI rewrites the weights, and only there does the shared weight refuse the option
        ort.InferenceSession(str(tmp_path / "old.onnx"), _options(1, True), providers=["CPUExecutionProvider"])
        refused = False
    except Exception:
        refused = True
    with caplog.at_level("WARNING", logger="skin_infer.runtime.session"):
        assert create_session(tmp_path / "old.onnx", "cpu", 1).run(None, {"x": x})[0].shape == exact.shape
    assert ("re-export it" in caplog.text) == refused
    assert unshare_quantized_weights(model) == 2  # the weight and its zero point
    onnx.save(model, tmp_path / "new.onnx")
    caplog.clear()
    with caplog.at_level("WARNING", logger="skin_infer.runtime.session"):
        y, wf = create_session(tmp_path / "new.onnx", "cpu", 1).run(None, {"x": x})
    assert caplog.text == ""
    np.testing.assert_allclose(y, exact, atol=16384)
    np.testing.assert_array_equal(wf, onnx.numpy_helper.to_array(model.graph.initializer[0]).astype(np.float32))


def _answers(image) -> tuple[dict, int]:
    """What the shipped defaults say of ``image`` (timings aside), and how many sessions were started from this
    machine's cached optimised graphs."""
    from skin_infer.runtime import Analyzer, graph_cache

    found = []
    lookup = graph_cache.lookup

    def counting(name):
        hit = lookup(name)
        found.append(hit is not None)
        return hit

    graph_cache.lookup = counting
    try:
        record = Analyzer()(image).to_dict()
    finally:
        graph_cache.lookup = lookup
    record.pop("timings_ms", None)
    return record, sum(found)


def test_a_later_run_starts_from_the_optimised_graphs_with_the_same_answers(tmp_path, monkeypatch, caplog):
    """The first run saves what ONNX Runtime optimised for this machine, one graph per model the photo needed
    (YuNet, the parser, the acne grader, the wrinkle detector); later runs load them with optimisation off and
    answer exactly as a run without the cache; a damaged or exposed cache is never used."""
    from shared_data import FACES

    from skin_infer.runtime import graph_cache

    photo = FACES / "photos" / "fairface_Latino_aligned.jpg"
    monkeypatch.setenv(graph_cache.ENV, "0")
    uncached, hits = _answers(photo)
    assert hits == 0 and not graph_cache.folder().exists()
    monkeypatch.delenv(graph_cache.ENV)
    first, hits = _answers(photo)
    graphs = sorted(graph_cache.folder().glob("*.onnx"))
    assert hits == 0 and len(graphs) == 4 and first == uncached
    assert oct(graph_cache.folder().stat().st_mode & 0o777) == "0o700"
    later, hits = _answers(photo)
    assert hits == 4 and later == uncached

    damaged = max(graphs, key=lambda p: p.stat().st_size)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the weights: still a loadable graph, a wrong one
    damaged.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        again, hits = _answers(photo)
    assert f"{damaged}: a damaged optimised graph" in caplog.text
    assert hits == 3 and again == uncached and len(list(graph_cache.folder().glob("*.onnx"))) == 4
    assert not damaged.exists() or damaged.read_bytes() != data  # rebuilt (its name is its content's digest)

    graph_cache.folder().chmod(0o777)
    caplog.clear()
    with caplog.at_level("WARNING"):
        exposed, hits = _answers(photo)
    assert "other users can write to it" in caplog.text and hits == 0 and exposed == uncached
    assert len(list(graph_cache.folder().glob("*.onnx"))) == 4  # nothing more written where it is never read


def test_an_unwritable_cache_still_runs(tmp_path, monkeypatch):
    from shared_data import FACES

    from skin_infer.runtime import graph_cache

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SKIN_INFER_HOME", str(blocker / "cache"))
    record, hits = _answers(FACES / "photos" / "fairface_Latino_aligned.jpg")
    assert hits == 0 and record["faces"] and not graph_cache.folder().exists()


def test_the_cache_keeps_the_most_recently_used_graphs(monkeypatch):
    from shared_data import FACES

    from skin_infer.runtime import graph_cache

    monkeypatch.setattr(graph_cache, "KEEP", 2)
    record, _ = _answers(FACES / "photos" / "fairface_Latino_aligned.jpg")
    assert record["faces"] and len(list(graph_cache.folder().glob("*.onnx"))) == 2
    monkeypatch.setattr(graph_cache, "KEEP_BYTES", 1)  # less than any one graph: none is kept
    _answers(FACES / "photos" / "fairface_Latino_aligned.jpg")
    assert len(list(graph_cache.folder().glob("*.onnx"))) == 0


def test_the_analysis_sessions_do_not_spin(classifier_bundle):
    # the analysis runs several models in turn: idle pools that spin would take the cores from the next one
    def spins(session) -> str | None:
        try:
            return session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # not set: ONNX Runtime's default
            return None

    model = classifier_bundle / "model.onnx"
    assert spins(create_session(model, "cpu", 2)) == spins(Classifier(classifier_bundle, "cpu", 2).session) == "0"
    assert spins(create_session(model, "cpu", 2, spinning=True)) is None  # ONNX Runtime's default: spinning
