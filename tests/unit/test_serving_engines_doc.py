"""Every contract snippet of docs/serving-engines.md parses with Keel's own contract loader, and
the llama.cpp one is the tier that tests/integration/test_upstream_outage.py runs for real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keel.contract import parse_contract
from tests.integration.test_upstream_outage import CONTRACT as OUTAGE_CONTRACT

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving-engines.md"
SNIPPETS = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


def snippet_id(snippet: str) -> str:
    """The snippet's upstream model name (the first block-style ``name:``)."""
    found = re.search(r"name: ([\w.-]+)\n", snippet)
    return found.group(1) if found else "snippet"


def test_the_page_has_a_snippet_per_engine() -> None:
    names = [snippet_id(s) for s in SNIPPETS]
    assert names == ["qwen-vllm", "upstream", "llama-server", "llama3-ollama", "llama3-kserve", "qwen-ray"]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=snippet_id)
def test_every_snippet_is_a_valid_contract(snippet: str) -> None:
    contract = parse_contract(snippet, source="docs/serving-engines.md")
    upstreams = [m for m in contract.models if m.provider == "openai_compatible"]
    assert [m.name for m in upstreams] == [snippet_id(snippet)]
    assert upstreams[0].base_url is not None and upstreams[0].upstream_model


def test_the_llama_cpp_snippet_is_the_tier_the_outage_test_runs() -> None:
    (documented,) = [s for s in SNIPPETS if snippet_id(s) == "upstream"]
    doc_model = parse_contract(documented).model("upstream")
    tested = parse_contract(OUTAGE_CONTRACT.format(port=8000)).model("upstream")
    assert doc_model == tested
