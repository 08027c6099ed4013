"""Execution providers: the one that really runs is reported; an unavailable request is refused with a fix."""

import onnxruntime as ort
import pytest

from skin_infer.runtime import Classifier, DeviceError
from skin_infer.runtime.session import resolve_device


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
