"""Retrieval: embeddings, the index snapshot, hybrid search and evidence selection."""
