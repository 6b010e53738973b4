"""A real HTTP receiver on 127.0.0.1 for alert webhooks: it records every JSON body posted to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

__all__ = ["WebhookHandler", "webhook_receiver"]


class WebhookHandler(BaseHTTPRequestHandler):
    """Answers 204 to every POST and keeps its JSON body in :attr:`received`."""

    received: list[dict[str, Any]] = []  # noqa: RUF012 - shared with the test through the class

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def webhook_receiver() -> Iterator[str]:
    """A running receiver (its earlier bodies cleared); yields the URL to post to."""
    server = HTTPServer(("127.0.0.1", 0), WebhookHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    WebhookHandler.received.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
