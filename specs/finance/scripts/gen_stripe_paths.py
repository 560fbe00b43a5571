#!/usr/bin/env python3
"""Generates specs/finance/data/stripe-paths.tsv from Stripe's published OpenAPI spec.

Usage: python3 specs/finance/scripts/gen_stripe_paths.py SPEC3_JSON > specs/finance/data/stripe-paths.tsv

SPEC3_JSON is `openapi/spec3.json` of https://github.com/stripe/openapi (MIT License,
Copyright (c) 2018- Stripe, Inc.); the table committed was generated from commit e0123a3
(API version 2022-04-12). The spec itself is not in the repository: only the derived table.

For each object type a `stripe` source reads, every property path is written with its type
and, when it can identify a person or a card, its PII/PCI class:

    object <TAB> path <TAB> type <TAB> class

Paths: properties joined with `.`; an array step is `[*]`; a property that is an object
(`$ref`, or `anyOf` of one `$ref` and nothing else) is walked into, up to MAX_DEPTH steps and
never into a schema already on the way (Stripe's schemas are recursive). An *expandable*
property (`anyOf: [string, $ref...]`, Stripe sends the id unless asked to expand) is an `id`.
Types: `string`, `boolean`, `integer`, `number`, `amount` (integer in the currency's minor
units: the property is named amount*, fee*, net, balance or its description says "smallest
currency unit"), `timestamp` (integer Unix seconds: `format: unix-time`), `currency` (ISO
4217 code, lower case), `id`, `object` (a map or a free-form object: a leaf).

Classes (see docs/user-guide.md, "Stripe"): the conservative choice is made where unsure.
"""
import json
import re
import sys

OBJECTS = ["balance_transaction", "charge", "refund", "payout", "dispute", "event", "customer"]
MAX_DEPTH = 4


def classify(path, name, ty):
    """The PII/PCI class of a leaf, or '' (see the module doc)."""
    steps = path.replace("[*]", "").split(".")
    parent = steps[-2] if len(steps) > 1 else ""
    if ty not in ("string", "id"):
        return ""
    if "email" in name:
        return "email"
    if "phone" in name:
        return "phone"
    if name in ("last4", "dynamic_last4", "fingerprint", "iin"):
        # A card's digits (or the hash Stripe derives from them) are PCI data; a bank
        # method's are an account number's.
        card = any(s in ("card", "card_present", "interac_present", "wallet", "source") for s in steps)
        return "card_number" if card or parent == "" else "account_number"
    if name == "routing_number":
        return "routing_number"
    if name == "account_number":
        return "account_number"
    # Institutions and card applications, not people.
    institutions = ("bank_name", "application_preferred_name", "dedicated_file_name", "product_name")
    if name == "name" or name.endswith("_name") and name not in institutions:
        return "name"
    if name in ("ip", "ip_address") or name.endswith("_ip"):
        return "ip_address"
    if name in ("line1", "line2", "city", "postal_code") and ("address" in parent or parent in ("shipping", "billing_details")):
        return "address"
    if name.endswith("_address") or name == "address":
        return "address"
    if name == "receipt_url":
        return "url"
    if name in ("tax_id", "vat_id"):
        return "other_id"
    return ""


def ref_name(ref):
    return ref.rsplit("/", 1)[-1]


def main():
    spec = json.load(open(sys.argv[1]))
    schemas = spec["components"]["schemas"]
    rows = []

    def scalar(name, prop):
        t = prop.get("type")
        if t == "integer":
            if prop.get("format") == "unix-time":
                return "timestamp"
            desc = prop.get("description", "")
            if re.match(r"^(amount|fee|net$|balance$)", name) or "smallest currency unit" in desc:
                return "amount"
            return "integer"
        if t == "string":
            if name == "currency" or prop.get("format") == "currency" or name.endswith("_currency"):
                return "currency"
            if name == "id":
                return "id"
            return "string"
        if t in ("boolean", "number"):
            return t
        return None

    def walk(path, name, prop, stack, depth):
        if "anyOf" in prop:
            options = prop["anyOf"]
            refs = [o for o in options if "$ref" in o]
            strings = [o for o in options if o.get("type") == "string"]
            if strings and refs:
                emit(path, name, "id")
                return
            if len(refs) == 1 and len(options) == 1:
                prop = refs[0]
            else:
                emit(path, name, "object")
                return
        if "$ref" in prop:
            target = ref_name(prop["$ref"])
            sch = schemas[target]
            if target in stack or depth >= MAX_DEPTH or not sch.get("properties"):
                emit(path, name, "object")
                return
            for k, p in sorted(sch["properties"].items()):
                walk(f"{path}.{k}", k, p, stack + [target], depth + 1)
            return
        t = prop.get("type")
        if t == "array":
            items = prop.get("items", {})
            st = scalar(name, items) if "type" in items and items.get("type") != "object" else None
            if st:
                emit(path + "[*]", name, st)
            elif depth >= MAX_DEPTH:
                emit(path, name, "object")
            else:
                walk(path + "[*]", name, items, stack, depth)
            return
        if t == "object":
            props = prop.get("properties")
            if props and depth < MAX_DEPTH:
                for k, p in sorted(props.items()):
                    walk(f"{path}.{k}", k, p, stack, depth + 1)
            else:
                emit(path, name, "object")
            return
        st = scalar(name, prop)
        emit(path, name, st or "object")

    def emit(path, name, ty):
        rows.append((current[0], path, ty, classify(path, name, ty)))

    current = [""]
    for obj in OBJECTS:
        current[0] = obj
        for k, p in sorted(schemas[obj]["properties"].items()):
            walk(k, k, p, [obj], 1)

    print("# Stripe object paths, generated by specs/finance/scripts/gen_stripe_paths.py from Stripe's")
    print("# published OpenAPI spec (github.com/stripe/openapi, spec3.json at e0123a3, API version")
    print("# 2022-04-12; MIT License, Copyright (c) 2018- Stripe, Inc.). Do not edit: regenerate.")
    print("# object\tpath\ttype\tclass")
    seen = set()
    for r in rows:
        if (r[0], r[1]) in seen:
            continue
        seen.add((r[0], r[1]))
        print("\t".join(r))


if __name__ == "__main__":
    main()
