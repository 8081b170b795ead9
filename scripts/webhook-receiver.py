#!/usr/bin/env python3
"""A webhook receiver for trying the service: verifies each delivery exactly as the Standard
Webhooks specification says (stdlib only) and prints it.

    WEBHOOK_SECRET=whsec_... scripts/webhook-receiver.py [port]   # default 9000

Answers 204 to a verified delivery, 400 to anything else (the service then retries it).
"""
import base64
import hashlib
import hmac
import http.server
import os
import sys
import time

KEY = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))
TOLERANCE_SECS = 5 * 60


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        msg_id = self.headers.get("webhook-id", "")
        timestamp = self.headers.get("webhook-timestamp", "0")
        signed = f"{msg_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
        # During a secret rotation the header carries one signature per secret, space-separated.
        offered = [
            s.split(",", 1)[1]
            for s in self.headers.get("webhook-signature", "").split()
            if s.startswith("v1,")
        ]
        fresh = abs(time.time() - int(timestamp)) <= TOLERANCE_SECS
        ok = fresh and any(hmac.compare_digest(expected, s) for s in offered)
        print("verified" if ok else "REJECTED", msg_id, body.decode(), flush=True)
        self.send_response(204 if ok else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
http.server.HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
