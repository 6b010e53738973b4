"""The ingest engines: the local one, and the Ray engine's errors (the Ray cluster itself is tested in integration)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from keel.contract import ChunkingSettings
from keel.errors import ConfigError, IngestEngineError
from keel.ingest.engine import LocalEngine, ParseJob, parse_and_chunk


class _CountingEmbedder:
    model_id = "fake@0"
    dim = 3

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: Any) -> np.ndarray[Any, Any]:
        self.calls.append(len(texts))
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray[Any, Any]:
        return self.embed([text])[0]


def test_local_engine_parses_from_disk_like_from_bytes_and_reports_failures(tmp_path: Path) -> None:
    doc = tmp_path / "leave.md"
    doc.write_text("---\ngroups: [staff]\n---\n# Leave\n\nEvery employee gets 31 days of paid leave a year.\n")
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe not utf-8 \xff")
    seen: list[tuple[str, int, int]] = []
    chunking = ChunkingSettings()
    results = LocalEngine(_CountingEmbedder()).parse(
        [ParseJob(rel_path="leave.md", path=doc), ParseJob(rel_path="bad.md", path=tmp_path / "bad.md")],
        chunking=chunking,
        progress=lambda *event: seen.append(event),
    )
    assert [r.rel_path for r in results] == ["leave.md", "bad.md"]
    assert results[0] == parse_and_chunk("leave.md", doc.read_bytes(), chunking)
    assert results[0].document is not None and results[0].document.groups == ["staff"]
    assert results[1].document is None and results[1].error == "not UTF-8 text"
    assert seen == [("parse", 1, 2), ("parse", 2, 2)]


def test_local_engine_embeds_in_batches_in_order() -> None:
    embedder = _CountingEmbedder()
    seen: list[tuple[str, int, int]] = []
    texts = [f"t{'x' * i}" for i in range(5)]
    vectors = LocalEngine(embedder).embed(texts, batch=2, progress=lambda *event: seen.append(event))
    assert embedder.calls == [2, 2, 1]
    assert vectors[:, 0].tolist() == [1, 2, 3, 4, 5]
    assert seen == [("embed", 2, 5), ("embed", 4, 5), ("embed", 5, 5)]
    assert LocalEngine(embedder).take_stats().tasks == 0


def test_engine_errors_are_config_errors_with_declared_codes() -> None:
    error = IngestEngineError("no cluster", code="ray_unreachable")
    assert isinstance(error, ConfigError) and error.code == "ray_unreachable"
    with pytest.raises(ValueError, match="undeclared"):
        IngestEngineError("x", code="nope")


def _ray_engine(address: str) -> Any:
    from keel.ingest.ray_engine import RayEngine
    from keel.retrieval.embedder import MiniLMEmbedder

    return RayEngine(embedder=MiniLMEmbedder(cache_dir=Path("unused")), address=address, connect_timeout_s=2)


def test_ray_not_installed_is_reported_with_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_ray(name: str, *args: Any) -> Any:
        if name == "ray":
            raise ModuleNotFoundError("No module named 'ray'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_ray)
    with pytest.raises(IngestEngineError) as caught:
        _ray_engine("auto").start()
    assert caught.value.code == "ray_not_installed" and "requirements/ray.txt" in str(caught.value)


def test_a_cluster_address_that_does_not_answer_fails_fast() -> None:
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(IngestEngineError) as caught:
        _ray_engine(f"127.0.0.1:{port}").start()
    assert caught.value.code == "ray_unreachable" and f"127.0.0.1:{port}" in str(caught.value)
