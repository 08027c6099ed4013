"""Every loss against values computed by hand."""

import math

import pytest

torch = pytest.importorskip("torch")

from skin_infer.train.losses import (  # noqa: E402
    HeadLoss,
    class_balanced_weights,
    label_distribution_targets,
    masked_smoothing_targets,
)

LOGITS = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
TARGET = torch.tensor([0, 2])
# softmax of [2, 0, 0]: p0 = e^2 / (e^2 + 2); of [0, 1, 0]: p2 = 1 / (2 + e)
P0 = math.exp(2) / (math.exp(2) + 2)
P2 = 1 / (2 + math.e)


def loss(spec, counts=(10, 10, 10), **kw):
    return float(HeadLoss(spec, counts, **kw)(LOGITS, TARGET))


def test_cross_entropy():
    assert loss("ce") == pytest.approx((-math.log(P0) - math.log(P2)) / 2, rel=1e-6)


def test_label_smoothing():
    # torch's smoothing: (1 - e) * CE + e * mean over classes of -log p
    e = 0.1
    lp1 = [2 - math.log(math.exp(2) + 2), -math.log(math.exp(2) + 2), -math.log(math.exp(2) + 2)]
    lp2 = [-math.log(2 + math.e), 1 - math.log(2 + math.e), -math.log(2 + math.e)]
    expected = ((1 - e) * -lp1[0] + e * -sum(lp1) / 3 + (1 - e) * -lp2[2] + e * -sum(lp2) / 3) / 2
    assert loss("ls", smoothing=e) == pytest.approx(expected, rel=1e-6)


def test_focal():
    expected = ((1 - P0) ** 2 * -math.log(P0) + (1 - P2) ** 2 * -math.log(P2)) / 2
    assert loss("focal", gamma=2.0) == pytest.approx(expected, rel=1e-6)
    assert loss("focal", gamma=0.0) == pytest.approx(loss("ce"), rel=1e-6)


def test_class_balanced_weights_by_effective_number():
    beta = 0.99
    raw = [(1 - beta) / (1 - beta**n) for n in (100, 10, 1)]
    expected = [3 * r / sum(raw) for r in raw]
    assert class_balanced_weights([100, 10, 1], beta).tolist() == pytest.approx(expected, rel=1e-6)


def test_class_balanced_focal_and_ce():
    counts, beta = (100, 10, 1), 0.99
    w = class_balanced_weights(counts, beta).tolist()
    focal = ((1 - P0) ** 2 * -math.log(P0) * w[0] + (1 - P2) ** 2 * -math.log(P2) * w[2]) / 2
    assert loss("cb_focal", counts, beta=beta, gamma=2.0) == pytest.approx(focal, rel=1e-6)
    ce = (-math.log(P0) * w[0] - math.log(P2) * w[2]) / 2
    assert loss("cb_ce", counts, beta=beta) == pytest.approx(ce, rel=1e-6)


def test_masked_label_smoothing_only_touches_neighbours():
    soft = masked_smoothing_targets(torch.tensor([0, 2, 4]), 5, 0.2)
    expected = [[0.8, 0.2, 0, 0, 0], [0, 0.1, 0.8, 0.1, 0], [0, 0, 0, 0.2, 0.8]]
    assert torch.allclose(soft, torch.tensor(expected))
    lp = torch.log_softmax(LOGITS, 1)
    expected = -(0.8 * lp[0, 0] + 0.2 * lp[0, 1] + 0.2 * lp[1, 1] + 0.8 * lp[1, 2]) / 2
    assert loss("masked_ls", smoothing=0.2) == pytest.approx(float(expected), rel=1e-6)


def test_label_distribution_over_grades():
    sigma = 0.8
    g = [math.exp(-(d**2) / (2 * sigma**2)) for d in (0, 1, 2)]
    expected = [[g[0], g[1], g[2]], [g[2], g[1], g[0]]]
    expected = [[v / sum(row) for v in row] for row in expected]
    assert torch.allclose(label_distribution_targets(TARGET, 3, sigma), torch.tensor(expected))
    lp = torch.log_softmax(LOGITS, 1).tolist()
    per = [-sum(expected[i][c] * lp[i][c] for c in range(3)) for i in range(2)]
    assert loss("ldl", sigma=sigma) == pytest.approx(sum(per) / 2, rel=1e-6)
    counts, beta = (100, 10, 1), 0.99
    w = class_balanced_weights(counts, beta).tolist()
    weighted = (per[0] * w[0] + per[1] * w[2]) / 2
    assert loss("cb_ldl", counts, beta=beta, sigma=sigma) == pytest.approx(weighted, rel=1e-6)


def test_soft_f1():
    p = torch.softmax(LOGITS, 1).tolist()
    f1 = []
    for c in range(3):
        tp = sum(p[i][c] for i in range(2) if TARGET[i] == c)
        fp = sum(p[i][c] for i in range(2) if TARGET[i] != c)
        fn = sum(1 - p[i][c] for i in range(2) if TARGET[i] == c)
        f1.append(2 * tp / (2 * tp + fp + fn))
    assert loss("soft_f1") == pytest.approx(1 - sum(f1) / 3, rel=1e-5)
    confident = HeadLoss("soft_f1", (1, 1, 1))(torch.eye(3) * 50, torch.arange(3))
    assert float(confident) == pytest.approx(0.0, abs=1e-5)


def test_weighted_sum():
    assert loss("ce:0.3+soft_f1:0.7") == pytest.approx(0.3 * loss("ce") + 0.7 * loss("soft_f1"), rel=1e-6)


def test_unknown_loss():
    with pytest.raises(ValueError, match="unknown loss 'dice'"):
        HeadLoss("dice", (1, 1))
