"""Guards and redaction."""
