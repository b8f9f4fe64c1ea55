"""A scripted HTTP server for download tests: 127.0.0.1 on a free port, answering only the test
process's own requests; every wait in it is bounded so that a failing test cannot hang the suite.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_BODY_MAX_S = 30.0  # a slow reply never holds its thread longer than this


class Server:
    """Scripted replies per path: the n-th GET of a path gets its n-th behaviour (the last repeats).

    Behaviours: "ok" (the body), an HTTP status like "404" or "500", "late" (a stall until
    `release` is set before any headers, then the body), "slow" (half the body, then a stall
    until `release` is set), "reset" (half the body, then a TCP reset), "short" (half the body
    announced as whole, then a clean close).
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[str]] = {}
        self.bodies: dict[str, bytes] = {}
        self.hits: Counter = Counter()
        self.lock = threading.Lock()
        self.stalled = threading.Event()  # set once a slow reply has sent half its body
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                with server.lock:
                    server.hits[self.path] += 1
                    script = server.routes.get(self.path, ["404"])
                    behaviour = script[min(server.hits[self.path], len(script)) - 1]
                    body = server.bodies.get(self.path, b"")
                server.reply(self, behaviour, body)

            def log_message(self, *args) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # Clients that time out or get killed close their socket: a late write's error is expected.
        self.httpd.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def reply(self, handler: BaseHTTPRequestHandler, behaviour: str, body: bytes) -> None:
        if behaviour == "late":
            self.release.wait(SLOW_BODY_MAX_S)
            behaviour = "ok"
        if behaviour.isdigit():
            handler.send_response(int(behaviour))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if behaviour == "ok":
            handler.wfile.write(body)
            return
        half = len(body) // 2
        handler.wfile.write(body[:half])
        if behaviour == "slow":
            handler.wfile.flush()
            self.stalled.set()
            self.release.wait(SLOW_BODY_MAX_S)
            handler.wfile.write(body[half:])
        elif behaviour == "reset":
            linger = struct.pack("ii", 1, 0)  # close with RST instead of FIN
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            handler.connection.close()
        elif behaviour != "short":
            raise ValueError(f"unknown behaviour {behaviour!r}")

    def add(self, path: str, body: bytes, *script: str) -> str:
        """Serve `body` at `path` following `script`; returns the full URL."""
        self.routes[path], self.bodies[path] = list(script), body
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
