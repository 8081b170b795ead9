#!/usr/bin/env python3
"""A local stand-in for Frankfurter's `/latest?base=EUR&symbols=…`, for the ingest benchmark.

Usage: standin.py PORT
The first path segment picks what a request gets (the rest of the path is ignored):
  /changed/...  the next publication day, every rate moved (a random walk step)
  /samevalues/... the next publication day, every rate as in the last answer
  /same/...     exactly the last answer again (an unchanged re-poll)
  /health       204, to wait for the server
Days start at 2020-01-01 and advance by one per /changed or /samevalues request, so every new
publication is newer than the stored one and never in the future.
"""
import datetime
import json
import random
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

rng = random.Random(42)
state = {"day": datetime.date(2020, 1, 1) - datetime.timedelta(days=1), "rates": {}}


def rounded(value):
    # Six significant digits, written as a plain decimal (what providers send).
    return float(f"{value:.6g}")


def answer(mode, symbols):
    if mode in ("changed", "samevalues") or not state["rates"]:
        state["day"] += datetime.timedelta(days=1)
        rates = state["rates"]
        for code in symbols:
            if code not in rates:
                rates[code] = rounded(10 ** rng.uniform(-0.6, 4.6))
            elif mode == "changed":
                rates[code] = rounded(rates[code] * (1 + rng.choice((-1, 1)) * rng.uniform(0.0005, 0.01)))
    return {
        "amount": 1.0,
        "base": "EUR",
        "date": state["day"].isoformat(),
        "rates": {c: state["rates"][c] for c in symbols if c in state["rates"]},
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        mode = url.path.strip("/").split("/")[0]
        if mode == "health":
            self.send_response(204)
            self.end_headers()
            return
        query = parse_qs(url.query)
        symbols = sorted(query.get("symbols", [""])[0].split(",")) if "symbols" in query else sorted(state["rates"])
        body = json.dumps(answer(mode, [s for s in symbols if s])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
