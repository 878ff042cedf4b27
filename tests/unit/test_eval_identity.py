"""Identity backends without the real footage: alignment maths and the ArcFace ONNX adapter on a tiny ONNX
model built here with onnx.helper (global average pooling then a fixed projection)."""

from __future__ import annotations

import numpy as np
import pytest

from avatarv.errors import InputError
from avatarv.eval.faces import FaceDetector
from avatarv.eval.identity import (
    ARCFACE_TEMPLATE_112,
    ArcFaceOnnxEmbedder,
    IdentityEmbedder,
    arcface_align,
    cosine_similarity,
    get_identity_embedder,
    identity_backends,
    register_identity_backend,
    umeyama_similarity,
)

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.concatenate([r, [[tx], [ty]]], 1)


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def test_umeyama_recovers_a_similarity_exactly():
    m = _similarity(17.0, 2.3, 40.0, -12.0)
    src = ARCFACE_TEMPLATE_112
    est = umeyama_similarity(src, _apply(m, src))
    np.testing.assert_allclose(est, m, atol=1e-9)
    # and the inverse direction maps the face points back onto the template
    back = umeyama_similarity(_apply(m, src), src)
    np.testing.assert_allclose(_apply(back, _apply(m, src)), src, atol=1e-9)


def test_umeyama_is_least_squares_under_noise_and_never_reflects():
    rng = np.random.default_rng(0)
    m = _similarity(-30.0, 0.7, 5.0, 9.0)
    dst = _apply(m, ARCFACE_TEMPLATE_112) + rng.normal(scale=0.5, size=(5, 2))
    est = umeyama_similarity(ARCFACE_TEMPLATE_112, dst)
    assert np.linalg.det(est[:, :2]) > 0
    assert np.abs(est - m).max() < 0.8
    mirrored = ARCFACE_TEMPLATE_112 * [-1, 1]  # a reflected face: the best *proper* similarity, no flip
    assert np.linalg.det(umeyama_similarity(ARCFACE_TEMPLATE_112, mirrored)[:, :2]) >= 0


def _frame_with_dots(points: np.ndarray, shape=(300, 320)) -> np.ndarray:
    frame = np.zeros((*shape, 3), dtype=np.uint8)
    for k, (x, y) in enumerate(points):
        xi, yi = int(round(x)), int(round(y))
        frame[yi - 2 : yi + 3, xi - 2 : xi + 3] = (50 * (k + 1), 255, 255 - 40 * k)
    return frame


def test_alignment_puts_the_five_points_on_the_template():
    m = _similarity(12.0, 2.0, 60.0, 30.0)
    face_points = _apply(m, ARCFACE_TEMPLATE_112)
    aligned = arcface_align(_frame_with_dots(face_points), face_points)
    assert aligned.shape == (112, 112, 3)
    for k, (x, y) in enumerate(ARCFACE_TEMPLATE_112):
        patch = aligned[int(round(y)) - 1 : int(round(y)) + 2, int(round(x)) - 1 : int(round(x)) + 2]
        assert patch[..., 1].max() > 200, f"landmark {k} not at its template position"
        assert abs(int(patch[..., 0].max()) - 50 * (k + 1)) < 30  # and it is the right landmark


def _tiny_arcface_onnx(path, weight: np.ndarray) -> None:
    """[N,3,112,112] -> global average pool -> [N,3] @ weight [3,D] -> [N,D]."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["embedding"]),
        ],
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", weight.shape[1]])],
        [numpy_helper.from_array(weight.astype(np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


class _FixedBox(FaceDetector):
    def __init__(self, box):
        self.box = box

    def detect(self, frame):
        return [(self.box, 1.0)]


def test_arcface_onnx_adapter_runs_the_model_on_aligned_normalised_faces(tmp_path):
    weight = np.array([[1.0, 0.0, 2.0, 0.5], [0.0, 1.0, -1.0, 0.5], [0.0, 0.0, 1.0, -1.0]])
    path = tmp_path / "tiny_arcface.onnx"
    _tiny_arcface_onnx(path, weight)
    m = _similarity(-8.0, 1.6, 70.0, 40.0)
    points = _apply(m, ARCFACE_TEMPLATE_112)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(300, 320, 3), dtype=np.uint8)
    embedder = ArcFaceOnnxEmbedder(path, detector=_FixedBox((60.0, 40.0, 260.0, 260.0)), landmarks=lambda f, b: points)
    assert embedder.dim == 4 and embedder.size == 112
    emb = embedder.embed_largest(frame)
    aligned = arcface_align(frame, points).astype(np.float64)
    expected = ((aligned - 127.5) / 127.5).mean(axis=(0, 1)) @ weight  # RGB channel means through W
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-5)
    # batch of two faces
    both = embedder.embed_faces(frame, [(0, 0, 10, 10), (5, 5, 20, 20)])
    assert both.shape == (2, 4)


def test_arcface_onnx_errors_are_for_people(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ArcFaceOnnxEmbedder(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx file")
    with pytest.raises(InputError, match="ONNX"):
        ArcFaceOnnxEmbedder(junk)


def test_cosine_and_backend_registry(monkeypatch):
    assert cosine_similarity([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert cosine_similarity([1.0, 0.0], [0.0, 3.0]) == pytest.approx(0.0)
    np.testing.assert_allclose(cosine_similarity(np.eye(3), np.ones(3)), np.full(3, 1 / np.sqrt(3)))
    assert {"dlib", "arcface-onnx", "world"} <= set(identity_backends())
    assert get_identity_embedder("world").name == "world"  # the shipped world embedder registers on first use
    with pytest.raises(InputError, match="unknown"):
        get_identity_embedder("nope")

    class _Const(IdentityEmbedder):
        name = "const"

        def embed_faces(self, frame, boxes):
            return np.ones((len(boxes), 2))

    from avatarv.eval import identity

    monkeypatch.setattr(identity, "_BACKENDS", dict(identity._BACKENDS))  # keep the registry clean
    register_identity_backend("const-test", lambda **kw: _Const(detector=_FixedBox((0, 0, 4, 4))))
    emb = get_identity_embedder("const-test").embed_largest(np.zeros((8, 8, 3), np.uint8))
    np.testing.assert_array_equal(emb, [1.0, 1.0])
