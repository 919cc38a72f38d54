"""A local OTLP/HTTP trace receiver for the benchmarks, run as its own process so that its work is
not the load generator's: it reads each POST /v1/traces, counts the spans in it (one protobuf parse)
and answers 200; on SIGTERM it prints `{"requests": N, "spans": N, "bytes": N}` and exits.

    python -m bench.otlp_sink PORT
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

COUNTS = {"requests": 0, "spans": 0, "bytes": 0}
_LOCK = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a collector would

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = ExportTraceServiceRequest.FromString(body)
        spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with _LOCK:
            COUNTS["requests"] += 1
            COUNTS["spans"] += spans
            COUNTS["bytes"] += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready", flush=True)
    server.serve_forever()
    print(json.dumps(COUNTS), flush=True)


if __name__ == "__main__":
    main()
