#!/usr/bin/env python3
"""Validates rendered chart manifests offline.

Built-in kinds: against the Kubernetes OpenAPI schemas that the kubernetes-validate
package carries (strict: unknown fields fail), for every --kube-version given.
Prometheus Operator kinds (not in those schemas): against the schemas below, written from
the operator's documented monitoring.coreos.com/v1 API for the fields Inland renders
(strict as well), plus checks the CRD schema cannot make: unique group and alert names,
balanced PromQL brackets.

    validate.py --kube-version 1.29.0 --kube-version 1.37.0 rendered.yaml…
"""

import argparse
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

# A Prometheus duration as the operator's CRDs define it.
DURATION = {"type": "string",
            "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
LABEL_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "operator"],
            "properties": {"key": {"type": "string"},
                           "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                           "values": {"type": "array", "items": {"type": "string"}}}}},
    },
}
OBJECT_META = {
    "type": "object", "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
                   "namespace": {"type": "string"}, "labels": STRING_MAP, "annotations": STRING_MAP},
}


def resource(kind, spec):
    return {
        "type": "object", "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": kind},
                       "metadata": OBJECT_META, "spec": spec},
    }


CRD_SCHEMAS = {
    "ServiceMonitor": resource("ServiceMonitor", {
        "type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
        "properties": {
            "selector": LABEL_SELECTOR,
            "namespaceSelector": {"type": "object", "additionalProperties": False,
                                  "properties": {"any": {"type": "boolean"},
                                                 "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "jobLabel": {"type": "string"},
            "targetLabels": {"type": "array", "items": {"type": "string"}},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "port": {"type": "string", "minLength": 1},
                    "path": {"type": "string", "pattern": "^/"},
                    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                    "interval": DURATION,
                    "scrapeTimeout": DURATION,
                    "honorLabels": {"type": "boolean"},
                    "honorTimestamps": {"type": "boolean"},
                    "relabelings": {"type": "array", "items": {"type": "object"}},
                    "metricRelabelings": {"type": "array", "items": {"type": "object"}},
                },
                "anyOf": [{"required": ["port"]}, {"required": ["targetPort"]}],
            }},
        },
    }),
    "PrometheusRule": resource("PrometheusRule", {
        "type": "object", "additionalProperties": False, "required": ["groups"],
        "properties": {"groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "rules"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "interval": DURATION,
                "labels": STRING_MAP,
                "rules": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["expr"],
                    "properties": {
                        "alert": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                        "record": {"type": "string", "pattern": r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
                        "expr": {"type": "string", "minLength": 1},
                        "for": DURATION,
                        "keep_firing_for": DURATION,
                        "labels": STRING_MAP,
                        "annotations": STRING_MAP,
                    },
                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                }},
            },
        }}},
    }),
}


def balanced(expr):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    in_string = None
    for ch in expr:
        if in_string:
            if ch == in_string:
                in_string = None
            continue
        if ch in "\"'`":
            in_string = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and not in_string


def check_rules(doc):
    problems = []
    groups = doc["spec"]["groups"]
    names = [g["name"] for g in groups]
    if len(names) != len(set(names)):
        problems.append(f"duplicate group names: {names}")
    alerts = [r["alert"] for g in groups for r in g["rules"] if "alert" in r]
    if len(alerts) != len(set(alerts)):
        problems.append(f"duplicate alert names: {alerts}")
    for g in groups:
        for r in g["rules"]:
            if not balanced(r["expr"]):
                problems.append(f"{r.get('alert') or r.get('record')}: unbalanced brackets in {r['expr']!r}")
            if re.search(r"\{\{|\}\}", r["expr"]):
                problems.append(f"{r.get('alert')}: unrendered template in expr")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kube-version", action="append", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    failures = 0
    counts = {}
    for path in args.files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        if not docs:
            print(f"FAIL {path}: no manifests")
            failures += 1
        for doc in docs:
            kind = doc.get("kind", "?")
            name = f"{kind}/{doc.get('metadata', {}).get('name', '?')}"
            if kind in CRD_SCHEMAS:
                errors = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                          for e in jsonschema.Draft7Validator(CRD_SCHEMAS[kind]).iter_errors(doc)]
                if not errors:
                    errors = check_rules(doc) if kind == "PrometheusRule" else []
                for e in errors:
                    print(f"FAIL {path}: {name} (pinned monitoring.coreos.com/v1 schema): {e}")
                failures += bool(errors)
                counts["crd"] = counts.get("crd", 0) + 1
                continue
            for version in args.kube_version:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    where = ".".join(str(p) for p in e.path) or "(root)"
                    print(f"FAIL {path}: {name} against Kubernetes {version} (strict): {where}: {e.message}")
                    failures += 1
                except kubernetes_validate.SchemaNotFoundError as e:
                    print(f"FAIL {path}: {name}: {e.message}")
                    failures += 1
                counts[version] = counts.get(version, 0) + 1
    summary = ", ".join(f"{n} against Kubernetes {v}" for v, n in counts.items() if v != "crd")
    print(f"{'FAILED' if failures else 'ok'}: {len(args.files)} renderings; {summary}; "
          f"{counts.get('crd', 0)} Prometheus Operator resources against the pinned schemas"
          + (f"; {failures} problems" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
