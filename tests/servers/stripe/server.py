#!/usr/bin/env python3
"""A local Stripe API for tests/stripe_client.rs, following Stripe's published API shape: the
list endpoints of balance transactions, charges, refunds, payouts, disputes and events
(`GET /v1/<object>?limit=&starting_after=&created[gte]=`, newest first, `{"object": "list",
"data": [...], "has_more": ..., "url": ...}`), bearer secret keys (401 with Stripe's error
object otherwise), objects made from Stripe's own example objects (fixtures3.json, from
stripe/openapi, MIT) with ids and `created` numbered.

Injections (test controls, not Stripe's API):
  POST /_inject?status=429&count=2&retry_after=1&should_retry=true  the next `count` list
      requests are answered `status` (429: rate_limit error; 5xx: api_error), with
      `Retry-After` and `Stripe-Should-Retry` when given;
  POST /_add?object=charges&count=3&created=1700000000  adds objects (late arrivals);
  GET  /_stats  requests served per path, and injected failures answered.
OAuth (Stripe Connect): with $INTROSPECT_URL (and $INTROSPECT_CLIENT, `id:secret`), a bearer
that is not the secret key is accepted when that authorization server's token introspection
(RFC 7662) says it is active: so an access token that expired early at the authorization
server is answered 401 here, as Stripe answers an expired OAuth token.
Prints `listening PORT` when ready. Standard library only."""
import base64
import urllib.request
import copy
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import urllib.parse
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = json.load(open(os.path.join(HERE, "fixtures3.json")))["resources"]
PREFIX = {"balance_transactions": ("balance_transaction", "txn_"), "charges": ("charge", "ch_"),
          "refunds": ("refund", "re_"), "payouts": ("payout", "po_"), "disputes": ("dispute", "dp_"),
          "events": ("event", "evt_")}
KEY = os.environ["STRIPE_KEY"]
COUNT = int(os.environ.get("COUNT", "250"))
BASE_CREATED = int(os.environ.get("BASE_CREATED", "1700000000"))

lock = threading.Lock()
objects = {name: [] for name in PREFIX}
serial = {name: 0 for name in PREFIX}
inject = []  # [status, retry_after, should_retry] per request to fail
stats = {"requests": {}, "injected": 0}


def add(name, created):
    kind, prefix = PREFIX[name]
    serial[name] += 1
    obj = copy.deepcopy(FIXTURES[kind])
    obj["id"] = "%s%014d" % (prefix, serial[name])
    obj["created"] = created
    if "amount" in obj:
        obj["amount"] = 100 + serial[name]  # minor units (cents)
    objects[name].append(obj)


for name in PREFIX:
    for i in range(COUNT):
        add(name, BASE_CREATED + i * 60)


def introspect_active(authorization):
    url = os.environ.get("INTROSPECT_URL")
    if not url or not authorization or not authorization.startswith("Bearer "):
        return False
    token = authorization[len("Bearer "):]
    body = ("token=" + urllib.parse.quote(token, safe="")).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Authorization", "Basic " + base64.b64encode(os.environ["INTROSPECT_CLIENT"].encode()).decode())
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    with lock:
        stats["introspections"] = stats.get("introspections", 0) + 1
        if not answer.get("active"):
            stats["unauthorized"] = stats.get("unauthorized", 0) + 1
    return bool(answer.get("active"))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_test")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        with lock:
            if url.path == "/_inject":
                for _ in range(int(q.get("count", "1"))):
                    inject.append((int(q["status"]), q.get("retry_after"), q.get("should_retry")))
                return self.send(200, {"queued": len(inject)})
            if url.path == "/_add":
                for i in range(int(q.get("count", "1"))):
                    add(q["object"], int(q["created"]) + i)
                return self.send(200, {"added": int(q.get("count", "1"))})
        self.send(404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_stats":
            with lock:
                return self.send(200, stats)
        name = url.path[len("/v1/"):] if url.path.startswith("/v1/") else None
        if name not in PREFIX:
            return self.send(404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}})
        with lock:
            stats["requests"][url.path] = stats["requests"].get(url.path, 0) + 1
        if self.headers.get("Authorization") != "Bearer " + KEY and not introspect_active(self.headers.get("Authorization")):
            return self.send(401, {"error": {"type": "invalid_request_error",
                                             "message": "Invalid API Key provided: sk_test_****" + KEY[-4:]}})
        with lock:
            failure = inject.pop(0) if inject else None
            if failure:
                stats["injected"] += 1
        if failure:
            status, retry_after, should_retry = failure
            headers = []
            if retry_after is not None:
                headers.append(("Retry-After", retry_after))
            if should_retry is not None:
                headers.append(("Stripe-Should-Retry", should_retry))
            kind = "rate_limit_error" if status == 429 else "api_error"
            return self.send(status, {"error": {"type": kind, "message": "injected"}}, headers)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        limit = max(1, min(100, int(q.get("limit", "10"))))
        with lock:
            items = sorted(objects[name], key=lambda o: (o["created"], o["id"]), reverse=True)
        if "created[gte]" in q:
            items = [o for o in items if o["created"] >= int(q["created[gte]"])]
        if "created[gt]" in q:
            items = [o for o in items if o["created"] > int(q["created[gt]"])]
        if "starting_after" in q:
            ids = [o["id"] for o in items]
            if q["starting_after"] not in ids:
                return self.send(400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                                 "param": "starting_after"}})
            items = items[ids.index(q["starting_after"]) + 1:]
        page = items[:limit]
        self.send(200, {"object": "list", "data": page, "has_more": len(items) > limit, "url": url.path})


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print("listening %d" % server.server_address[1], flush=True)
server.serve_forever()
