#!/usr/bin/env python3
"""A local Stripe API for tests/stripe_client.rs, following Stripe's published API shape: the
list endpoints of balance transactions, charges, refunds, payouts, disputes and events
(`GET /v1/<object>?limit=&starting_after=&created[gte]=`, newest first, `{"object": "list",
"data": [...], "has_more": ..., "url": ...}`), bearer secret keys (401 with Stripe's error
object otherwise), objects made from Stripe's own example objects (fixtures3.json, from
stripe/openapi, MIT) with ids and `created` numbered.

Injections (test controls, not Stripe's API):
  POST /_inject?status=429&count=2&retry_after=1&should_retry=true[&after=N]  the next `count`
      list requests (after N more answered normally) are answered `status` (429: rate_limit
      error; 5xx: api_error), with `Retry-After` and `Stripe-Should-Retry` when given;
  POST /_add?object=charges&count=3&created=1700000000  adds objects (late arrivals);
  POST /_slow?ms=3000&count=1[&after=N]  the next `count` list requests (after N more) wait
      `ms` before answering;
  POST /_bad?object=balance_transactions&kind=no_id|wrong_object|float_amount&created=...
      adds one object that cannot be a record (the client keeps it; a source rejects it);
  POST /_barrier?count=2  list requests are not answered until `count` of them have arrived
      (a minute at most): two clients started together overlap;
  GET  /_stats  requests served per path, injected failures answered, and when each list
      request arrived (`arrivals`: seconds on the server's monotonic clock).
Synthetic customers: every charge's `billing_details` (name, e-mail, phone, address) and card
`last4` are made up per charge (`customer_name(n)`, `customer_email(n)`), so that tests can grep
run output for them; balance transactions vary their currency (every fifth in JPY, which has
no minor unit), status (every seventh `pending`), fee and net.
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
import time
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
slow = []  # milliseconds to wait, per request
skip = {"inject": 0, "slow": 0}  # requests answered normally before the queue applies
stats = {"requests": {}, "injected": 0, "arrivals": []}
barrier = {"count": 0}


FAMILIES = ["Quimby", "Vantongeren", "Okonkwo-Birch", "Haldorsen", "Marchetti"]


def customer_name(n):
    return "Ada %s%d" % (FAMILIES[n % len(FAMILIES)], n)


def customer_email(n):
    return "ada.%s%d@customers.example" % (FAMILIES[n % len(FAMILIES)].lower(), n)


def add(name, created):
    kind, prefix = PREFIX[name]
    serial[name] += 1
    n = serial[name]
    obj = copy.deepcopy(FIXTURES[kind])
    obj["id"] = "%s%014d" % (prefix, n)
    obj["created"] = created
    if "amount" in obj:
        obj["amount"] = 100 + n  # minor units (cents)
    if kind == "charge":
        obj["billing_details"] = {
            "name": customer_name(n), "email": customer_email(n), "phone": "+1 555 01%02d" % (n % 100),
            "address": {"city": "Springfield", "country": "US", "line1": "%d Elm Street" % n, "line2": None,
                        "postal_code": "627%02d" % (n % 100), "state": "IL"},
            "tax_id": None}
        obj["receipt_email"] = customer_email(n)
        obj["payment_method_details"]["card"]["last4"] = "%04d" % (4000 + n % 1000)
    if kind == "balance_transaction":
        obj["currency"] = "jpy" if n % 5 == 0 else "usd"
        obj["status"] = "pending" if n % 7 == 0 else "available"
        obj["fee"] = n % 30
        obj["fee_details"] = [{"amount": n % 30, "application": None, "currency": obj["currency"],
                               "description": "Stripe processing fees", "type": "stripe_fee"}] if n % 30 else []
        obj["net"] = obj["amount"] - obj["fee"]
        obj["source"] = "ch_%014d" % n
    objects[name].append(obj)


def add_bad(name, kind, created):
    """One object that cannot be a record, with a customer's e-mail in it (never to be logged)."""
    add(name, created)
    obj = objects[name][-1]
    obj["description"] = "refund for " + customer_email(0)
    if kind == "no_id":
        del obj["id"]
    elif kind == "wrong_object":
        obj["object"] = "customer"
    elif kind == "float_amount":
        obj["amount"] = 12.5


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
                skip["inject"] = int(q.get("after", "0"))
                for _ in range(int(q.get("count", "1"))):
                    inject.append((int(q["status"]), q.get("retry_after"), q.get("should_retry")))
                return self.send(200, {"queued": len(inject)})
            if url.path == "/_slow":
                skip["slow"] = int(q.get("after", "0"))
                for _ in range(int(q.get("count", "1"))):
                    slow.append(int(q["ms"]))
                return self.send(200, {"queued": len(slow)})
            if url.path == "/_barrier":
                barrier["count"] = int(q.get("count", "2"))
                return self.send(200, {"barrier": barrier["count"]})
            if url.path == "/_bad":
                add_bad(q["object"], q["kind"], int(q["created"]))
                return self.send(200, {"added": 1})
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
            stats["arrivals"].append(time.monotonic())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(stats["arrivals"]) >= barrier["count"]:
                    break
            time.sleep(0.005)
        if self.headers.get("Authorization") != "Bearer " + KEY and not introspect_active(self.headers.get("Authorization")):
            return self.send(401, {"error": {"type": "invalid_request_error",
                                             "message": "Invalid API Key provided: sk_test_****" + KEY[-4:]}})
        with lock:
            failure = None
            if inject and skip["inject"] > 0:
                skip["inject"] -= 1
            elif inject:
                failure = inject.pop(0)
                stats["injected"] += 1
            wait = 0
            if slow and skip["slow"] > 0:
                skip["slow"] -= 1
            elif slow:
                wait = slow.pop(0)
        if wait:
            time.sleep(wait / 1000.0)
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
            items = sorted(objects[name], key=lambda o: (o["created"], o.get("id", "")), reverse=True)
        if "created[gte]" in q:
            items = [o for o in items if o["created"] >= int(q["created[gte]"])]
        if "created[gt]" in q:
            items = [o for o in items if o["created"] > int(q["created[gt]"])]
        if "starting_after" in q:
            ids = [o.get("id") for o in items]
            if q["starting_after"] not in ids:
                return self.send(400, {"error": {"type": "invalid_request_error", "code": "resource_missing",
                                                 "param": "starting_after"}})
            items = items[ids.index(q["starting_after"]) + 1:]
        page = items[:limit]
        self.send(200, {"object": "list", "data": page, "has_more": len(items) > limit, "url": url.path})


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print("listening %d" % server.server_address[1], flush=True)
server.serve_forever()
