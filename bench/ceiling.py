"""The bare ceiling: iwork-mc's server stack answering without doing iwork-mc's work.

    python bench/ceiling.py [--port 8099] [--processes 1]

An ASGI app that reads the request (drains the body, as the gateway does) and
answers every request with the bytes of a real ``sendmobile`` success answer
(same body length, same Content-Type), without parsing parameters, checking
the signature or storing anything.  It is served the way ``iwork-mc serve``
serves the gateway: uvicorn with httptools, uvloop, no access log, lifespan
off, log level warning; ``--processes N`` runs N such processes on one port
with SO_REUSEPORT, as ``iwork-mc serve --processes N`` does.  So the accept
rate divided by this rate, measured in the same run on the same CPU, is the
share of the stack's capacity that iwork-mc's own work leaves.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from iwork_mc.gateway.methods import SEND_MOBILE, business_result
from iwork_mc.top import envelope

__all__ = ["BODY", "CONTENT_TYPE", "app", "main", "serve"]

#: A real success answer: the accepted payload with a 13-character request id.
BODY = envelope.render_success(SEND_MOBILE, business_result(), "0ceiling00000", "json")
CONTENT_TYPE = envelope.CONTENT_TYPES["json"].encode("ascii")
_HEADERS = [(b"content-type", CONTENT_TYPE), (b"content-length", str(len(BODY)).encode("ascii"))]
_START = {"type": "http.response.start", "status": 200, "headers": _HEADERS}
_BODY = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer any HTTP request with :data:`BODY` once its body is read."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send(_START)
    await send(_BODY)


def _listen(host: str, port: int) -> socket.socket:
    # As iwork_mc.cli.server.listen: each process binds the port, the kernel spreads connections.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def serve(host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve :func:`app` with uvicorn configured as ``iwork_mc.cli.server`` configures it."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        lifespan="off",
        http="httptools",
        loop="uvloop" if sys.platform != "win32" else "asyncio",
    )
    server = uvicorn.Server(config)
    server.run(sockets=[_listen(host, port)] if reuse_port else None)


def _supervise(host: str, port: int, count: int) -> int:
    command = [sys.executable, os.path.abspath(__file__), "--host", host, "--port", str(port)]
    children = [subprocess.Popen([*command, "--reuse-port"]) for _ in range(count)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                os.kill(child.pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    return max((child.wait() for child in children), key=abs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processes > 1:
        sys.exit(_supervise(args.host, args.port, args.processes))
    serve(args.host, args.port, reuse_port=args.reuse_port)


if __name__ == "__main__":
    main()
