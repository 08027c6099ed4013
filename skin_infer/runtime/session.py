"""ONNX Runtime sessions with explicit devices: say which provider really runs, refuse what can't be honoured."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import graph_cache
from .errors import BundleError, DeviceError

log = logging.getLogger(__name__)

DEVICES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}
# What `auto` tries, best first. TensorRT is left to an explicit request: it builds engines on first use.
AUTO_ORDER = ("cuda", "coreml", "dml", "cpu")
INSTALL_HINT = {
    "cuda": "pip install 'skin-infer[gpu]' (onnxruntime-gpu) with a CUDA-capable driver",
    "tensorrt": "pip install 'skin-infer[gpu]' and NVIDIA TensorRT",
    "coreml": "the standard onnxruntime wheel on macOS",
    "dml": "pip install onnxruntime-directml on Windows",
    "cpu": "pip install onnxruntime",
}


def resolve_device(device: str) -> list[str]:
    """The provider list to ask ONNX Runtime for; an unavailable explicit device is an error."""
    device = device.lower()
    available = ort.get_available_providers()
    if device == "auto":
        for name in AUTO_ORDER:
            if DEVICES[name] in available:
                return [DEVICES[name]] + (["CPUExecutionProvider"] if name != "cpu" else [])
        return ["CPUExecutionProvider"]
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of auto, {', '.join(DEVICES)}.")
    provider = DEVICES[device]
    if provider not in available:
        raise DeviceError(
            f"device {device!r} needs {provider}, which this onnxruntime does not have "
            f"(available: {', '.join(available)}); install it with: {INSTALL_HINT[device]}."
        )
    return [provider] + (["CPUExecutionProvider"] if device != "cpu" else [])


def _options(threads: int, exact_int8: bool, spinning: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not spinning:
        # Each session has its own thread pool, whose threads spin for a while after every run. The analysis runs
        # four or five models in turn with Python work between them: spinning pools of the models that just ran
        # take the cores from the next one (a folder of 18 photos: 4.3 s spinning, 3.0 s not, on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if exact_int8:
        # x86 CPUs without VNNI compute u8 x s8 products with a saturating instruction: the same int8 graph then
        # answers differently from a VNNI CPU (measured: the shipped lesion model lost 2 points of balanced
        # accuracy on an AVX2-only EPYC). This makes ONNX Runtime use u8 x u8 there: every CPU gives one answer.
        options.add_session_config_entry("session.x64quantprecision", "1")
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def _load_error(where: Path, exc: Exception) -> BundleError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = (
        " Bundles hold their weights inside model.onnx (external data files are not loaded); re-export it."
        if "external" in first.lower() or "model_path" in first.lower()
        else " Re-export the bundle."
    )
    return BundleError(f"{where}: ONNX Runtime cannot load this graph ({first[:300]}).{hint}")


def _build(
    source: bytes | str,
    threads: int,
    exact_int8: bool,
    spinning: bool,
    providers: list[str],
    cache: bool,
    digest: str | None,
):
    """A session from the graph ONNX Runtime optimised for this machine before (graph_cache), else optimised
    now, its result cached for the next process. Only CPU sessions are cached: other providers' optimised
    graphs hold nodes of their own."""
    name = None
    if cache and providers == ["CPUExecutionProvider"] and graph_cache.enabled():
        if digest is None:
            graph = source if isinstance(source, bytes) else Path(source).read_bytes()
            digest = hashlib.sha256(graph).hexdigest()
        name = graph_cache.key(digest, json.dumps([threads, exact_int8]))
        if found := graph_cache.lookup(name):
            options = _options(threads, exact_int8, spinning)
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            try:
                return ort.InferenceSession(found[1], sess_options=options, providers=providers)
            except Exception:  # onnxruntime raises its own exception types
                log.warning("%s: the cached optimised graph does not load; it is removed and built again", found[0])
                found[0].unlink(missing_ok=True)
    options = _options(threads, exact_int8, spinning)
    staged = graph_cache.staging(name) if name else None
    if staged:
        options.optimized_model_filepath = str(staged)
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception:  # onnxruntime raises its own exception types
        if not staged:
            raise
        staged.unlink(missing_ok=True)  # perhaps the cache could not be written (a full disk): once without it
        return _build(source, threads, exact_int8, spinning, providers, False, digest)
    if staged:
        graph_cache.store(name, staged)
    return session


def create_session(
    model: Path | bytes,
    device: str = "auto",
    threads: int = 0,
    where: Path | None = None,
    cache: bool = True,
    digest: str | None = None,
    spinning: bool = False,
) -> ort.InferenceSession:
    """Create a session on ``device`` from a graph file or its verified bytes (``digest``: their sha256, when
    known); ``threads`` > 0 fixes the intra-op thread count; ``cache`` reuses this machine's optimised graph
    (graph_cache); ``spinning`` lets its idle threads spin between runs (ONNX Runtime's default: faster for one
    model run in a loop, slower where several models take turns). A graph ONNX Runtime cannot load is a
    BundleError naming ``where``."""
    where = where or (model if isinstance(model, Path) else Path("<graph>"))
    providers = resolve_device(device)
    source = model if isinstance(model, bytes) else str(model)
    try:
        session = _build(source, threads, True, spinning, providers, cache, digest)
    except Exception as exc:  # onnxruntime raises its own exception types for every kind of bad graph
        try:  # a graph exported before its int8 weights were unshared loads only without the exact products
            session = _build(source, threads, False, spinning, providers, cache, digest)
        except Exception:
            raise _load_error(where, exc) from None
        log.warning(
            "%s: its int8 weights are shared with other nodes, so on a CPU without VNNI its answers can differ "
            "from the figures it was exported with; re-export it with this version of skin-infer.",
            where,
        )
    running = session.get_providers()
    if device != "auto" and providers[0] not in running:
        raise DeviceError(
            f"{where}: {providers[0]} was requested but ONNX Runtime fell back to {running[0]} "
            f"(its libraries failed to load); install it with: {INSTALL_HINT[device.lower()]}."
        )
    log.info("%s runs on %s", where.name, running[0])
    return session


class BundleSession:
    """A bundle's session for the classes that run one (``Classifier``, ``Detector``): created on first use and
    checked once against the manifest (the class's ``_check_graph(session)``, what the graph declares), under a
    lock, however many threads ask first. What the graph really gives is checked on its first run
    (``_check_outputs``), whatever input that is: with ``lazy`` (a shipped model), the first real one, so a model
    a photo does not need (the lesion model, for a face photo) costs nothing to start and one that is needed costs
    no extra run; otherwise a blank input at once. An unavailable device is refused at once either way."""

    bundle: Any
    input_name: str
    output_names: list[str]  # every output the manifest names, the ones _check_outputs checks

    def _start(self, device: str, threads: int, lazy: bool) -> None:
        self._device, self._threads, self._session, self._loading = device, threads, None, threading.Lock()
        self._verified = False
        if lazy:
            resolve_device(device)
        else:  # load and check the graph now
            spec = self.bundle.input_spec
            h, w = spec.size
            blank = np.zeros((1, 3, h, w) if spec.layout == "NCHW" else (1, h, w, 3), np.float32)
            self._outputs(self.output_names[:1], blank)

    @property
    def session(self) -> ort.InferenceSession:
        with self._loading:
            if self._session is None:
                session = create_session(
                    self.bundle.model, self._device, self._threads, self.bundle.model_path,
                    digest=self.bundle.model_sha256,
                )  # fmt: skip
                self._check_graph(session)
                self._session = session
        return self._session

    def _outputs(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs ``names`` on ``batch``. The first run asks for every output and checks them:
        dynamic dimensions are only known by running."""
        session = self.session
        if self._verified:
            return session.run(names, {self.input_name: batch})
        try:
            got = dict(zip(self.output_names, session.run(self.output_names, {self.input_name: batch}), strict=True))
        except Exception as exc:  # onnxruntime's own exception types
            raise BundleError(
                f"{self.bundle.path}: the graph fails on its first input ({str(exc)[:200]}); re-export it."
            ) from None
        self._check_outputs(got)
        self._verified = True
        return [got[n] for n in names]

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def provider(self) -> str:
        return self._session.get_providers()[0] if self._session else resolve_device(self._device)[0]

    def _check_graph(self, session: ort.InferenceSession) -> None:
        raise NotImplementedError

    def _check_outputs(self, outputs: dict[str, np.ndarray]) -> None:
        raise NotImplementedError
