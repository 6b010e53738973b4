"""The retrieval-quality benchmark prints lexical, dense and hybrid side by side, also on a BEIR dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

DOCS = {
    "d1": ("Annual leave", "Employees receive twenty seven days of paid annual leave each year."),
    "d2": ("Bicycle scheme", "The bicycle lease scheme covers e-bikes up to fifteen hundred euros."),
    "d3": ("Server patching", "Production servers are patched every second Tuesday of the month."),
    "d4": ("Office plants", "Plants in the office are watered on Fridays by the facilities team."),
}
QUERIES = {
    "q1": ("How much holiday do staff get?", "d1"),
    "q2": ("When are servers patched?", "d3"),
    "q3": ("Can I lease an electric bike?", "d2"),
}


def test_benchmark_on_a_beir_dataset(tmp_path: Path) -> None:
    beir = tmp_path / "tiny-beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in DOCS.items()), encoding="utf-8"
    )
    (beir / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in QUERIES.items()), encoding="utf-8"
    )
    (beir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, (_, d) in QUERIES.items()), encoding="utf-8"
    )
    out = tmp_path / "quality.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "retrieval_quality.py"), "--beir", str(beir), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=REPO,
    )
    for mode in ("lexical", "dense", "hybrid"):
        assert result.stdout.count(f"\n{mode} ") == 2, result.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert set(figures["beir"]) == {"lexical", "dense", "hybrid"}
    assert figures["beir"]["dense"]["recall@k"] == 1.0, "four documents: every relevant one is in the top 5"
    assert figures["sample"]["hybrid"]["ndcg@10"] > 0.8
