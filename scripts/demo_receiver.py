#!/usr/bin/env python3
"""The demo's webhook endpoint: prints one line per request and answers 200.

    demo_receiver.py [--host 127.0.0.1] [--port 8080]

Each line shows the record's key, partition and offset (from the sidecar's kafka-*
headers) and the body. Standard library only.
"""

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUTPUT_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the sidecar pools connections

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        key = self.headers.get("kafka-key")
        if key is None:
            key = "b64:" + self.headers["kafka-key-b64"] if self.headers.get("kafka-key-b64") else "(null)"
        line = "received topic={} partition={} offset={} key={} body={}".format(
            self.headers.get("kafka-topic", "?"),
            self.headers.get("kafka-partition", "?"),
            self.headers.get("kafka-offset", "?"),
            key,
            body.decode("utf-8", errors="backslashreplace"),
        )
        # One write per line under a lock: the server answers on several threads, and
        # print() writes the text and the newline separately (lines could interleave).
        with OUTPUT_LOCK:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # one line per request is printed above; no access log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"demo receiver listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
