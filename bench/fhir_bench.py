"""The fhir.resources side of bench/fhir.sh: for each file, REPS times, parse and validate it
with the pydantic models of fhir.resources (R4B, the closest release to R4 it ships), then
resolve the references inside Bundles the way Sluice does (fullUrl, Type/id, urn:uuid:,
contained #id), walking the validated models' dict. Prints one JSON line per file like
specs/fhir/examples/fhir_bench.rs (wall times and mean CPU time per run). Measures, asserts
nothing.

    python fhir_bench.py REPS FILE...
"""

import json
import statistics
import sys
import time

from fhir.resources.R4B import get_fhir_model_class


def resolve(bundle: dict) -> int:
    """Reference resolution over a Bundle dict: returns the number of unresolved references."""
    by_url, by_type_id = set(), set()
    entries = bundle.get("entry") or []
    for e in entries:
        if e.get("fullUrl"):
            by_url.add(e["fullUrl"])
        r = e.get("resource") or {}
        if r.get("id"):
            by_type_id.add(f"{r.get('resourceType')}/{r['id']}")
    missing = 0

    def walk(node, contained):
        nonlocal missing
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                if ref.startswith("#"):
                    missing += ref[1:] not in contained
                elif ref not in by_url and "/".join(ref.split("/_history/")[0].split("/")[-2:]) not in by_type_id:
                    missing += 1
            for v in node.values():
                walk(v, contained)
        elif isinstance(node, list):
            for v in node:
                walk(v, contained)

    for e in entries:
        r = e.get("resource") or {}
        walk(r, {c.get("id") for c in r.get("contained") or []})
    return missing


def run(text: str, ndjson: bool):
    resources = 0
    docs = [l for l in text.splitlines() if l.strip()] if ndjson else [text]
    for doc in docs:
        raw = json.loads(doc)
        model = get_fhir_model_class(raw["resourceType"]).model_validate_json(doc)
        resources += 1
        if raw["resourceType"] == "Bundle":
            as_dict = model.model_dump(mode="json", by_alias=True, exclude_none=True)
            resources += len(as_dict.get("entry") or [])
            resolve(as_dict)
    return resources


def main():
    reps = int(sys.argv[1])
    total = 0.0
    total_bytes = 0
    total_resources = 0
    for f in sys.argv[2:]:
        text = open(f, encoding="utf-8").read()
        times = []
        resources = 0
        error = None
        cpu_start = time.process_time()
        for _ in range(reps):
            start = time.perf_counter()
            try:
                resources = run(text, f.endswith(".ndjson"))
            except Exception as e:  # a model fhir.resources rejects: reported, not timed
                error = type(e).__name__
                break
            times.append((time.perf_counter() - start) * 1000)
        if error:
            print(json.dumps({"file": f, "error": error}))
            continue
        cpu = (time.process_time() - cpu_start) * 1000 / reps
        median = statistics.median(times)
        total += median
        total_bytes += len(text.encode())
        total_resources += resources
        print(json.dumps({"file": f, "bytes": len(text.encode()), "resources": resources,
                          "median_ms": round(median, 3), "min_ms": round(min(times), 3),
                          "cpu_ms": round(cpu, 1)}))
    print(json.dumps({"total": True, "bytes": total_bytes, "resources": total_resources, "median_ms": round(total, 3)}))


if __name__ == "__main__":
    main()
