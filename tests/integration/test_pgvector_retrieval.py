"""retrieval.dense_backend: pgvector on the sample corpus: same passages as the local index, ACLs inside the query."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.contract import load_contract
from keel.ingest.ingestor import Ingestor
from keel.retrieval.pgvector import PgVectorIndex
from keel.retrieval.search import dense_search, exact_dense_search
from keel.retrieval.versions import IndexStore
from keel.store import PostgresDatabase
from tests.conftest import SAMPLE_PROJECT
from tests.integration.conftest import auth, start_server, stop_server

pytestmark = pytest.mark.integration

QUESTIONS = [
    "How many days of annual leave do I get?",
    "What is the daily meal allowance when travelling?",
    "How do I rotate the on-call pager?",
    "When is pay day?",
    "What are the salary bands for engineers?",
]
PRINCIPALS = {
    "everyone": frozenset({"everyone"}),
    "hr": frozenset({"everyone", "hr"}),
    "engineering": frozenset({"everyone", "engineering"}),
}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, embedder: Any) -> Iterator[dict[str, Any]]:
    import shutil

    root = tmp_path_factory.mktemp("pgvector") / "acme"
    shutil.copytree(SAMPLE_PROJECT, root, ignore=shutil.ignore_patterns(".keel"))
    contract_path = root / "keel.yaml"
    text = contract_path.read_text(encoding="utf-8")
    assert "\nretrieval:\n" in text
    contract_path.write_text(text.replace("\nretrieval:\n", "\nretrieval:\n  dense_backend: pgvector\n"), "utf-8")
    schema = f"keel_pgvi_{uuid.uuid4().hex[:8]}"
    db = PostgresDatabase(postgres_url, schema=schema)
    index_store = IndexStore(root / ".keel" / "index")
    contract = load_contract(contract_path)
    ingestor = Ingestor(contract=contract, docs_dir=root / "docs", db=db, index_store=index_store, embedder=embedder)
    report = ingestor.run()
    env = {"KEEL_DATABASE_URL": postgres_url, "KEEL_DATABASE_SCHEMA": schema}
    yield {"db": db, "index": index_store, "report": report, "ingestor": ingestor, "root": Path(root), "env": env}
    db.close()


def test_publishing_a_version_writes_every_passage_with_its_acl(ingested: dict[str, Any], embedder: Any) -> None:
    snapshot = ingested["index"].current()
    dense = PgVectorIndex(ingested["db"], dimensions=embedder.dim)
    assert dense.count(snapshot.version) == snapshot.size > 0
    rows = (
        ingested["db"]
        .connection()
        .execute("SELECT row_id, groups FROM index_passages WHERE version = ? ORDER BY row_id", (snapshot.version,))
    )
    stored = {int(r[0]): set(r[1]) for r in rows}
    for passage in snapshot.passages(list(range(snapshot.size))):
        assert stored[passage.row] == set(passage.groups), passage.chunk_id


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_pgvector_finds_the_passages_the_local_exact_search_finds_and_no_others(
    ingested: dict[str, Any], embedder: Any, who: str
) -> None:
    groups = PRINCIPALS[who]
    snapshot = ingested["index"].current()
    view = snapshot.view(groups)
    dense = PgVectorIndex(ingested["db"], dimensions=embedder.dim)
    for question in QUESTIONS:
        vector = embedder.embed_one(question)
        exact = exact_dense_search(snapshot, vector, view, limit=10)
        got = dense.search(snapshot.version, vector, groups, limit=10)
        assert all(view.mask[row] for row, _ in got), "only readable rows"
        assert [row for row, _ in got] == [row for row, _ in exact], question
        assert [s for _, s in got] == pytest.approx([s for _, s in exact], abs=1e-4)
        assert {r for r, _ in dense_search(snapshot, vector, view, limit=10)} == {r for r, _ in got}


def test_turning_pgvector_on_for_an_existing_index_publishes_its_vectors(ingested: dict[str, Any]) -> None:
    db, index_store = ingested["db"], ingested["index"]
    before = index_store.active_version()
    again = ingested["ingestor"].run()
    assert again.version == before, "nothing changed: no new version"
    db.connection().execute("DELETE FROM index_passages")
    rebuilt = ingested["ingestor"].run()
    assert rebuilt.version == before + 1
    assert PgVectorIndex(db, dimensions=384).count(rebuilt.version) == index_store.current().size


def test_a_served_question_is_searched_in_pgvector_within_the_callers_groups(
    ingested: dict[str, Any], tmp_path: Path
) -> None:
    from keel.identity import KeyStore

    keys = {
        who: KeyStore(ingested["db"]).create(principal_id=who, tenant="acme", groups=groups, roles=["user"]).secret
        for who, groups in (("hana", ["hr"]), ("eli", ["engineering"]))
    }
    server = start_server(ingested["root"], tmp_path / "server.log", extra_env=ingested["env"])
    try:
        for who, expect_hr in (("hana", True), ("eli", False)):
            body = {"question": "What are the salary bands for engineers?", "app": "default"}
            response = httpx.post(server.url + "/v1/ask", json=body, headers=auth(keys[who]), timeout=180)
            assert response.status_code == 200, response.text
            served = response.json()
            trace = httpx.get(
                server.url + f"/v1/traces/{served['request_id']}", headers=auth(keys[who]), timeout=30
            ).json()
            (retrieve,) = [s for s in trace["spans"] if s["name"] == "retrieve"]
            assert retrieve["attributes"]["dense_backend"] == "pgvector"
            sources = {h["doc_id"] for h in retrieve["attributes"]["hits"]}
            hr_docs = {
                str(r[0])
                for r in ingested["db"].connection().execute("SELECT doc_id FROM documents WHERE source = 'hr'")
            }
            assert bool(sources & hr_docs) is expect_hr, (who, sources)
    finally:
        stop_server(server)
