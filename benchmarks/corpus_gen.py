"""Synthetic corpora for retrieval at scale, written as real snapshot folders.

``generate(spec, folder)`` writes ``folder/snapshot`` with the same
:class:`keel.retrieval.snapshot.SnapshotWriter` the ingestor uses (so an ANN index is
built above its threshold, and the benchmark measures the product's own load path) and
``folder/meta.npz`` with what a benchmark needs to ask realistic questions (subtopic
centroids, topic vocabularies, group popularity).

The corpus, deterministic by seed:

* documents of 1-9 chunks (about 5), each about one subtopic of one topic;
* text: ~30-60 words per chunk, drawn Zipf-wise from a general vocabulary and from the
  document's topic vocabulary, so BM25 postings have a realistic long tail;
* embeddings (384-d, unit): a Gaussian mixture of topics, subtopics around them,
  documents around a subtopic, chunks around their document;
* ACLs: 300 groups of Zipf-distributed popularity, each topic with a few "home" groups;
  a document is readable by 1-3 groups, 5% are readable by ``everyone``.

Run alone: ``.venv/bin/python benchmarks/corpus_gen.py 100000 /tmp/corpus``.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from keel.retrieval.snapshot import PassageRecord, SnapshotWriter
from keel.text import STOP_WORDS, terms

__all__ = ["CorpusSpec", "generate", "group_name", "load_meta"]

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


@dataclass(frozen=True, kw_only=True)
class CorpusSpec:
    """The shape of a synthetic corpus."""

    chunks: int
    seed: int = 7
    dim: int = 384
    groups: int = 300
    topics: int = 40
    subtopics: int = 10
    general_words: int = 4_000
    topic_words: int = 250
    public_share: float = 0.05
    home_groups: int = 8


def group_name(index: int) -> str:
    """The name of group ``index`` (0 is the most popular)."""
    return f"g{index:03d}"


def _vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """Distinct pseudo-words that the index analyser keeps as they are (no stemming change, no stop word)."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < size:
        word = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 5))))
        if word in seen or word in STOP_WORDS or terms(word) != [word]:
            continue
        seen.add(word)
        out.append(word)
    return out


def _zipf_cdf(n: int, s: float) -> NDArray[np.float64]:
    weights = 1.0 / np.arange(1, n + 1) ** s
    cdf: NDArray[np.float64] = np.cumsum(weights / weights.sum())
    return cdf


def _unit(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), dtype=np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> NDArray[np.float32]:
    return np.asarray(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale), dtype=np.float32)


def generate(spec: CorpusSpec, folder: Path, *, log: bool = True) -> Path:
    """Write the corpus of ``spec`` into ``folder`` (``snapshot/`` and ``meta.npz``); returns the snapshot folder."""
    started = time.perf_counter()

    def say(message: str) -> None:
        if log:
            print(f"  [corpus {spec.chunks:,} {time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr)

    rng = np.random.default_rng(spec.seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = _vocabulary(spec.general_words + spec.topics * spec.topic_words, rng)
    vocab = np.array(words, dtype=object)

    # Documents: sizes, topics, subtopics.
    sizes = 1 + rng.poisson(4.0, size=spec.chunks // 3 + 16).clip(0, 8)
    docs = int(np.searchsorted(np.cumsum(sizes), spec.chunks)) + 1
    sizes = sizes[:docs]
    sizes[-1] -= int(sizes.sum()) - spec.chunks
    doc_sub = rng.integers(0, spec.topics * spec.subtopics, size=docs)
    doc_topic = doc_sub // spec.subtopics
    row_doc = np.repeat(np.arange(docs), sizes)
    say(f"{docs:,} documents")

    # ACLs.
    popularity = 1.0 / np.arange(1, spec.groups + 1) ** 1.0
    popularity /= popularity.sum()
    home = np.stack([rng.choice(spec.groups, size=spec.home_groups, replace=False) for _ in range(spec.topics)])
    public = rng.random(docs) < spec.public_share
    how_many = rng.choice([1, 2, 3], size=docs, p=[0.5, 0.3, 0.2])
    from_home = rng.random((docs, 3)) < 0.5
    global_pick = rng.choice(spec.groups, size=(docs, 3), p=popularity)
    home_pick = home[doc_topic[:, None], rng.integers(0, spec.home_groups, size=(docs, 3))]
    picks = np.where(from_home, home_pick, global_pick)
    names = [group_name(g) for g in range(spec.groups)]
    doc_groups: list[tuple[str, ...]] = []
    for d in range(docs):
        if public[d]:
            doc_groups.append(("everyone",))
        else:
            doc_groups.append(tuple(sorted({names[g] for g in picks[d, : how_many[d]]})))

    # Embeddings.
    topic_c = _unit(rng.standard_normal((spec.topics, spec.dim), dtype=np.float32))
    subs = spec.topics * spec.subtopics
    sub_c = _unit(np.repeat(topic_c, spec.subtopics, axis=0) + _noise(rng, (subs, spec.dim), 0.068))
    doc_v = np.empty((docs, spec.dim), dtype=np.float32)
    for s in range(0, docs, 65_536):
        e = min(docs, s + 65_536)
        doc_v[s:e] = _unit(sub_c[doc_sub[s:e]] + _noise(rng, (e - s, spec.dim), 0.045))
    vectors = np.empty((spec.chunks, spec.dim), dtype=np.float32)
    for s in range(0, spec.chunks, 65_536):
        e = min(spec.chunks, s + 65_536)
        vectors[s:e] = _unit(doc_v[row_doc[s:e]] + _noise(rng, (e - s, spec.dim), 0.025))
    del doc_v
    say("embeddings")

    # Text: Zipfian words from the general and the topic vocabulary.
    lengths = rng.integers(30, 61, size=spec.chunks)
    total = int(lengths.sum())
    token_topic = np.repeat(doc_topic[row_doc], lengths)
    general = np.searchsorted(_zipf_cdf(spec.general_words, 1.1), rng.random(total))
    topical = spec.general_words + token_topic * spec.topic_words
    topical += np.searchsorted(_zipf_cdf(spec.topic_words, 0.9), rng.random(total))
    tokens = np.where(rng.random(total) < 0.45, topical, general.clip(0, spec.general_words - 1))
    title_ids = spec.general_words + doc_topic[:, None] * spec.topic_words + rng.integers(0, 40, size=(docs, 3))
    ends = np.cumsum(lengths)
    passages: list[PassageRecord] = []
    passage_terms: list[list[str]] = []
    for row, (start, end) in enumerate(itertools.pairwise(itertools.chain([0], ends.tolist()))):
        d = int(row_doc[row])
        title = " ".join(vocab[title_ids[d]].tolist()).title()
        body = vocab[tokens[start:end]].tolist()
        text = " ".join(body).capitalize() + "."
        path = f"t{doc_topic[d]:02d}/d{d:07d}.md"
        passages.append(
            PassageRecord(
                chunk_id=f"c_{spec.seed}_{row:08d}",
                doc_id=f"d_{spec.seed}_{d:07d}",
                title=title,
                path=path,
                heading=title,
                text=text,
                groups=doc_groups[d],
                text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            )
        )
        passage_terms.append(title.lower().split() + body)
        if (row + 1) % 200_000 == 0:
            say(f"text {row + 1:,}/{spec.chunks:,}")
    say("text")

    np.savez(
        folder / "meta.npz",
        sub_centroids=sub_c,
        vocab=np.array(words, dtype=np.str_),
        popularity=popularity,
        home=home,
        spec=np.array([repr(asdict(spec))]),
    )
    snapshot = folder / "snapshot"
    staging = folder / ".snapshot-staging"
    if staging.exists():
        import shutil

        shutil.rmtree(staging)
    SnapshotWriter(staging).write(
        version=1,
        embedder="synthetic-384",
        passages=passages,
        vectors=vectors,
        passage_terms=passage_terms,
        extra={"created_at": 0.0, "synthetic": asdict(spec), "seconds_to_generate": time.perf_counter() - started},
    )
    staging.rename(snapshot)
    say("snapshot written")
    return snapshot


def load_meta(folder: Path) -> dict[str, NDArray[np.generic]]:
    """What :func:`generate` saved beside the snapshot."""
    data = np.load(folder / "meta.npz")
    return {key: data[key] for key in data.files}


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(f"/tmp/keel-corpus-{size}")
    print(generate(CorpusSpec(chunks=size), out))
