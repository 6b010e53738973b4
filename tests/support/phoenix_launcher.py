"""Run ``phoenix serve`` kept to 127.0.0.1; started by tests/support/phoenix.py with .venv-phoenix's Python.

Phoenix's HTTP server binds ``PHOENIX_HOST``, but its gRPC OTLP receiver always binds
``[::]`` (every interface) and no setting changes that: this launcher rebinds it to
127.0.0.1 before Phoenix starts. It also refuses, and logs, every connection Phoenix
tries beyond the loopback addresses, so a feature that reaches the internet shows in
the server's log instead of hanging or leaking. Runs under Phoenix's interpreter, not
Keel's, so it imports nothing from Keel or the tests.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

_ALL_INTERFACES = "[::]:"


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # unix sockets and the like
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_outbound(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and not _is_loopback(args[1]):
        print(f"phoenix_launcher: refused a connection to {args[1]!r}", file=sys.stderr, flush=True)
        raise OSError(f"the test Phoenix may connect to 127.0.0.1 only, not {args[1]!r}")


def _bind_grpc_to_loopback() -> None:
    import grpc.aio

    make_server = grpc.aio.server

    def server(*args: Any, **kwargs: Any) -> Any:
        made = make_server(*args, **kwargs)
        add_insecure_port = made.add_insecure_port

        def add_loopback_port(address: str) -> int:
            if not address.startswith(_ALL_INTERFACES):
                raise RuntimeError(f"Phoenix bound gRPC to {address!r}, which this launcher does not expect")
            return int(add_insecure_port("127.0.0.1:" + address.removeprefix(_ALL_INTERFACES)))

        made.add_insecure_port = add_loopback_port
        return made

    grpc.aio.server = server


def main() -> None:
    """Start ``phoenix serve`` in this process, configured by the ``PHOENIX_*`` environment."""
    sys.addaudithook(_refuse_outbound)
    _bind_grpc_to_loopback()
    from phoenix.server.main import main as phoenix_main

    sys.argv = ["phoenix", "serve"]
    phoenix_main()


if __name__ == "__main__":
    main()
