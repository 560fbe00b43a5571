#!/usr/bin/env python3
"""Derives QuickBooks Online entities in the v3 API's JSON form, and the table of their paths,
from QuickBooks Online API responses in XML.

Usage:
    python3 specs/finance/scripts/gen_quickbooks.py json  XML_DIR > tests/fixtures/quickbooks/entities.json
    python3 specs/finance/scripts/gen_quickbooks.py paths XML_DIR > specs/finance/data/quickbooks-paths.tsv

XML_DIR is `tests/fixtures/quickbooks/xml/`: responses of the QuickBooks Online v3 API as
recorded by the quickbooks-ruby gem's test fixtures (MIT License; see
tests/fixtures/quickbooks/README.md). They are Intuit's own answers to its published API, in
the XML form the API gives with `Accept: application/xml`. The JSON form the API gives with
`Accept: application/json` (what Sluice asks for) is derived element by element, as Intuit's
API reference shows both forms:

- an element with children is an object; its attributes are members (`domain`, `sparse`,
  `status` of an entity);
- a reference (`...Ref`) is `{"value": TEXT, "name": ATTRIBUTE}` (name only when written);
- an element the schema repeats (`Line`, `LinkedTxn`, `CustomField`, `TaxLine`, ...) is an
  array, even with one item;
- `true`/`false` are booleans; amounts, quantities, rates and line numbers are numbers (the
  JSON API writes them unquoted); every other text (ids, sync tokens, dates) is a string.

Paths are joined with `.`; an array step is `[*]`. Types: `decimal` (an amount in major units
of the transaction's currency), `number`, `date` (`YYYY-MM-DD`), `datetime` (RFC 3339 with
offset), `currency` (`CurrencyRef.value`, ISO 4217), `id` (`Id`, `SyncToken`, `TxnId`, a
reference's `value`), `boolean`, `string`. Classes (see docs/user-guide.md, "QuickBooks"):
names of customers, vendors, employees and payees (a reference's `name`), addresses, e-mail
addresses, phone numbers and account numbers; the conservative choice is made where unsure.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

ENTITIES = [
    "Account", "Bill", "BillPayment", "CreditMemo", "Deposit", "Invoice", "JournalEntry",
    "Payment", "Purchase", "RefundReceipt", "SalesReceipt", "Transfer", "VendorCredit",
]
ARRAYS = {"Line", "LinkedTxn", "CustomField", "TaxLine", "Attachable"}
NUMBERS = {"Qty", "ExchangeRate", "TaxPercent", "LineNum", "TaxInclusiveAmt"}
DECIMALS = {
    "Amount", "TotalAmt", "Balance", "UnappliedAmt", "TaxAmount", "HomeTotalAmt", "HomeBalance",
    "CurrentBalance", "CurrentBalanceWithSubAccounts", "NetAmountTaxable", "UnitPrice",
    "TotalTax", "HomeAmount", "DiscountAmount", "DepositTotalAmt",
}
PEOPLE_REFS = {"CustomerRef", "VendorRef", "EntityRef", "EmployeeRef", "PayeeRef"}
ADDRESSES = {"BillAddr", "ShipAddr", "ShipFromAddr", "VendorAddr", "RemitToAddr"}


def local(tag):
    return tag.rsplit("}", 1)[-1]


def leaf(tag, text):
    text = (text or "").strip()
    if text in ("true", "false"):
        return text == "true"
    if tag in NUMBERS or tag in DECIMALS:
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text else number
    return text


def convert(el):
    tag = local(el.tag)
    children = list(el)
    if tag.endswith("Ref") and not children:
        out = {"value": (el.text or "").strip()}
        if "name" in el.attrib:
            out["name"] = el.attrib["name"]
        return out
    if not children:
        return leaf(tag, el.text)
    out = {}
    for k, v in el.attrib.items():
        out[k] = v == "true" if v in ("true", "false") else v
    for c in children:
        name = local(c.tag)
        value = convert(c)
        if name in ARRAYS:
            out.setdefault(name, []).append(value)
        elif name in out:
            prev = out[name]
            out[name] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            out[name] = value
    return out


def entities(xml_dir):
    found = {e: [] for e in ENTITIES}
    for name in sorted(os.listdir(xml_dir)):
        if not name.endswith(".xml"):
            continue
        root = ET.parse(os.path.join(xml_dir, name)).getroot()
        for el in root.iter():
            tag = local(el.tag)
            # Entities only: an `Account` inside a line is a reference, never an element.
            if tag in found and ("domain" in el.attrib or el is root):
                obj = convert(el)
                obj["_fixture"] = name
                found[tag].append(obj)
    return found


def kind(path, key, value):
    steps = path.replace("[*]", "").split(".")
    parent = steps[-2] if len(steps) > 1 else ""
    if isinstance(value, bool):
        return "boolean"
    if parent == "CurrencyRef" and key == "value":
        return "currency"
    if key in DECIMALS:
        return "decimal"
    if key in NUMBERS:
        return "number"
    if key in ("Id", "SyncToken", "TxnId", "TxnLineId", "DefinitionId") or (parent.endswith("Ref") and key == "value"):
        return "id"
    if key.endswith("Date"):
        return "date"
    if key.endswith("Time"):
        return "datetime"
    return "string"


def classify(path, key):
    steps = path.replace("[*]", "").split(".")
    parent = steps[-2] if len(steps) > 1 else ""
    if parent in PEOPLE_REFS and key == "name":
        return "name"
    if parent in ADDRESSES or any(s in ADDRESSES for s in steps):
        return "" if key == "Id" else "address"
    if "EmailAddr" in parent or parent == "BillEmail" or key == "EmailAddress":
        return "email"
    if "Phone" in parent or "Phone" in key:
        return "phone"
    if key in ("AcctNum", "BankAccountNumber"):
        return "account_number"
    return ""


def walk(obj, prefix, rows):
    for key, value in obj.items():
        if key == "_fixture":
            continue
        path = f"{prefix}.{key}" if prefix else key
        items = value if isinstance(value, list) else None
        if items is not None:
            path += "[*]"
            for item in items:
                if isinstance(item, dict):
                    walk(item, path, rows)
                else:
                    rows.setdefault(path, (kind(path, key, item), classify(path, key)))
        elif isinstance(value, dict):
            walk(value, path, rows)
        else:
            rows.setdefault(path, (kind(path, key, value), classify(path, key)))


def main():
    mode, xml_dir = sys.argv[1], sys.argv[2]
    found = entities(xml_dir)
    if mode == "json":
        json.dump(found, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        return
    print("# QuickBooks Online entity paths, generated by specs/finance/scripts/gen_quickbooks.py from")
    print("# the QuickBooks Online v3 API responses of tests/fixtures/quickbooks/xml/ (quickbooks-ruby")
    print("# fixtures, MIT License, Copyright (c) 2013 Cody Caughlan). Do not edit: regenerate.")
    print("# object\tpath\ttype\tclass")
    for entity in ENTITIES:
        rows = {}
        # What every entity has, whether or not a fixture shows it, and CDC's deletion marker.
        rows["Id"] = ("id", "")
        rows["SyncToken"] = ("id", "")
        rows["status"] = ("string", "")
        rows["domain"] = ("string", "")
        rows["sparse"] = ("boolean", "")
        rows["MetaData.CreateTime"] = ("datetime", "")
        rows["MetaData.LastUpdatedTime"] = ("datetime", "")
        # Intuit's reference gives every transaction and account its currency, shown or not.
        rows["CurrencyRef.value"] = ("currency", "")
        rows["CurrencyRef.name"] = ("string", "")
        if entity != "Account":
            # Intuit's reference gives every transaction entity these, shown or not.
            rows["DocNumber"] = ("string", "")
            rows["TxnDate"] = ("date", "")
            rows["PrivateNote"] = ("string", "")
            rows["ExchangeRate"] = ("number", "")
        for obj in found[entity]:
            walk(obj, "", rows)
        for path in sorted(rows):
            ty, cls = rows[path]
            print(f"{entity}\t{path}\t{ty}\t{cls}")


if __name__ == "__main__":
    main()
