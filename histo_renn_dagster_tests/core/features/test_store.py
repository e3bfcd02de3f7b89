from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from histo_renn_dagster.core.errors import EmbeddingStoreError
from histo_renn_dagster.core.features import (
    ComputeSpec,
    EmbeddingSpec,
    check_embedding,
    embed_store_files,
    load_backbone,
    read_embedding,
    resolve_compute,
)
from histo_renn_dagster.core.features.store import write_embedding
from histo_renn_dagster_tests.core.features.helpers import TINY_DIM


@pytest.fixture(scope="module")
def written(stores, tiny_backbone, tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("emb")
    jobs = [(s, out / f"{s.stem}.emb.h5") for s in stores]
    backbone = load_backbone(tiny_backbone, "random", seed=0)
    compute = resolve_compute(ComputeSpec(device="cpu", batch_size=4))
    results = list(embed_store_files(jobs, backbone, EmbeddingSpec(k=4, seed=9), compute))
    assert [r.out for r in results] == [o for _, o in jobs]
    assert sorted(p.name for p in out.iterdir()) == sorted(o.name for _, o in jobs)  # no temps
    return [o for _, o in jobs]


def test_layout_and_provenance(written, stores) -> None:
    emb = read_embedding(written[0])
    assert emb.indices.dtype == np.int64 and emb.indices.shape == (4,)
    assert emb.features.dtype == np.float32 and emb.features.shape == (4, TINY_DIM)
    assert emb.mean.shape == (TINY_DIM,) and emb.coords.shape == (4, 2)
    a = emb.attrs
    assert a["backbone"] == "tiny_test" and a["weights"] == "random"
    assert a["weights_source"] == "random init (seed 0)" and a["weights_sha256"] == ""
    assert a["device"] == "cpu" and a["precision"] == "fp32" and a["seed"] == 9
    assert a["tile_store"] == str(stores[0]) and a["slide_id"] == "slide-0"
    assert (a["k"], a["k_requested"], a["n_tiles"], a["input_px"]) == (4, 4, 5, 32)
    assert check_embedding(emb, expected_dim=TINY_DIM, n_tiles=5) == {
        "finite": [],
        "dimension": [],
        "indices": [],
        "empty": [],
    }


def test_empty_slide_is_a_well_formed_file_flagged_empty(written) -> None:
    emb = read_embedding(written[2])
    assert emb.k == 0 and emb.features.shape == (0, TINY_DIM)
    problems = check_embedding(emb, expected_dim=TINY_DIM)
    assert problems["empty"] and not problems["finite"] and not problems["indices"]


def _tamper(path: Path, tmp_path: Path, **datasets) -> Path:
    emb = read_embedding(path)
    out = tmp_path / "t.h5"
    with h5py.File(out, "w") as h5:
        for name in ("indices", "coords", "features", "mean"):
            h5[name] = datasets.get(name, getattr(emb, name))
        for key, value in emb.attrs.items():
            h5.attrs[key] = value
    return out


def test_checks_catch_bad_values(written, tmp_path) -> None:
    emb = read_embedding(written[0])
    nan = emb.features.copy()
    nan[1, 0] = np.nan
    found = check_embedding(
        read_embedding(_tamper(written[0], tmp_path, features=nan)), expected_dim=TINY_DIM
    )
    assert found["finite"] == ["slide-0: 1 of 4 tile embeddings not finite"]
    assert check_embedding(emb, expected_dim=2048)["dimension"]
    assert check_embedding(emb, expected_dim=TINY_DIM, n_tiles=3)["indices"]  # re-tiled store
    twice = emb.indices.copy()
    twice[1] = twice[0]
    found = check_embedding(
        read_embedding(_tamper(written[0], tmp_path, indices=twice)), expected_dim=TINY_DIM
    )
    assert any("repeat" in p for p in found["indices"])


def test_read_rejects_non_embedding_files(written, tmp_path, stores) -> None:
    with pytest.raises(EmbeddingStoreError, match="not an embedding file"):
        read_embedding(stores[0])
    with pytest.raises(EmbeddingStoreError, match="cannot open"):
        read_embedding(tmp_path / "absent.h5")
    emb = read_embedding(written[0])
    with pytest.raises(EmbeddingStoreError, match=r"mean has shape \(3,\)"):
        read_embedding(_tamper(written[0], tmp_path, mean=emb.mean[:3]))


def test_write_rejects_inconsistent_shapes(written, tmp_path) -> None:
    from histo_renn_dagster.core.features.embedding import SlideEmbedding, plan_slide

    plan = plan_slide(read_embedding(written[0]).attrs["tile_store"], EmbeddingSpec(k=4, seed=9))
    bad = SlideEmbedding(
        plan=plan, features=np.zeros((4, 3), np.float32), mean=np.zeros(5, np.float32)
    )
    with pytest.raises(EmbeddingStoreError, match="inconsistent shapes"):
        write_embedding(tmp_path / "bad.h5", bad, {})
    assert list(tmp_path.iterdir()) == []
