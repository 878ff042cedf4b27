"""The Ray executor runs the same stage classes and gives byte-identical artifacts to the local pool."""

from __future__ import annotations

import pytest

from avatarv.data.curation.engine import Engine
from avatarv.data.curation.pipeline import Pipeline
from avatarv.data.curation.stages.dedup import Dedup, Fingerprint
from avatarv.data.curation.stages.normalise import Normalise
from avatarv.data.curation.stages.prefilter import Prefilter
from avatarv.data.curation.stages.scenes import Scenes
from avatarv.data.curation.worldset import make_clip_set

ray = pytest.importorskip("ray", reason="the ray executor needs: pip install 'avatarv[scale]'")


def _pipeline():
    # lossless normalise: libx264's bytes are not reproducible across processes (see normalise.py)
    return Pipeline([Normalise(store="npy"), Prefilter(), Scenes(), Fingerprint(), Dedup()])


def _tree(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "artifacts").rglob("*"))
            if p.is_file()}


@pytest.mark.slow
def test_local_and_ray_give_identical_artifacts(tmp_path):
    inp = tmp_path / "in"
    make_clip_set(inp, n=3, seconds=1.2, size=64)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    r1 = Engine(_pipeline(), inp, local).run("local", workers=2)
    from avatarv.data.curation.executors import RayExecutor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ex = RayExecutor()
        assert ex.capacity == 2.0
        r2 = Engine(_pipeline(), inp, on_ray).run(ex)
    finally:
        ray.shutdown()
    assert len(r1.executed) == len(r2.executed) == 3 * 4 + 1
    a, b = _tree(local), _tree(on_ray)
    assert sorted(a) == sorted(b)
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]
