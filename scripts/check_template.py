#!/usr/bin/env python3
"""What cfn-lint and `sam validate` cannot know about template.yaml, checked against the code.

Run with the tools venv's Python (it needs samtranslator, from aws-sam-cli):
    .venv-tools/bin/python scripts/check_template.py [template.yaml]

1. No circular dependency after SAM's transform (an HTTP function that references the
   HTTP API it is attached to is one; cfn-lint does not see it inside the API's body).
2. Every route the axum routers serve is routed to the function that serves it, and
   every HttpApi route reaches a handler.
3. One state machine per statemachine/*.asl.json, substituting every ${Placeholder}.
4. Every function crate has exactly one function, built by cargo-lambda by its name.
5. Every environment variable is one shared/src/config.rs reads; every secret comes from a
   NoEcho parameter with no default but empty.
6. The DynamoDB table has exactly the store's schema.
Exits 1 listing every problem found.
"""
import json
import os
import re
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
# Which function serves the routes of each router module (functions/*/src/main.rs).
ROUTER_FUNCTION = {
    "chat.rs": "ChatFunction",
    "webhooks.rs": "WebhookFunction",
    "hitl.rs": "HitlFunction",
    "runs.rs": "RunsFunction",
    "system.rs": "RunsFunction",
    "ui/mod.rs": "RunsFunction",
}
# API Gateway's greedy path serves what axum spells as several routes.
GREEDY = {"/ui/": "/ui/{proxy+}", "/ui/{file}": "/ui/{proxy+}"}
SECRETS = {
    "API_KEY", "HITL_SECRET", "KIEAI_WEBHOOK_SECRET", "UPLOAD_POST_WEBHOOK_SECRET",
    "KIEAI_API_KEY", "SHOTSTACK_API_KEY", "UPLOAD_POST_API_KEY", "LLM_API_KEY",
}
TABLE_SCHEMA = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": sorted(
        [(n, "S") for n in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")]
    ),
    "KeySchema": [("pk", "HASH"), ("sk", "RANGE")],
    "GlobalSecondaryIndexes": {
        "gsi1": ([("gsi1pk", "HASH"), ("gsi1sk", "RANGE")], "ALL"),
        "gsi2": ([("gsi2pk", "HASH"), ("gsi2sk", "RANGE")], "ALL"),
    },
    "TimeToLive": ("expires_at", True),
}

problems = []


def problem(message):
    problems.append(message)


# ------------------------------------------------------------------ 1. cycles
def references(node):
    """Logical ids a CloudFormation value refers to."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!][^}]*)\}", text)}
                if isinstance(value, list):
                    found |= references(value[1])
            else:
                found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def check_cycles(resources):
    graph = {}
    for rid, res in resources.items():
        deps = references(res.get("Properties", {}))
        depends_on = res.get("DependsOn", [])
        deps |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        graph[rid] = {d for d in deps if d in resources and d != rid}
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep]
                problem("circular dependency after SAM's transform: " + " -> ".join(cycle))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)


def transformed(template):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # The translator wants S3 locations where `sam build` would have put them.
    for res in template["Resources"].values():
        props = res.get("Properties", {})
        for key in ("CodeUri", "DefinitionUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://bucket/" + props[key]

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(template, {}, NoManagedPolicies())


# ------------------------------------------------------------------ 2. routes
ROUTE = re.compile(r'\.route\(\s*"([^"]+)",\s*((?:[a-z]+\([^()]*\)\.?)+)\s*\)', re.S)
METHOD = re.compile(r"\b(get|post|put|patch|delete)\(")


def code_routes():
    routes = {}
    for module, function in ROUTER_FUNCTION.items():
        path = ROOT / "shared/src/api" / module
        if not path.exists():
            continue
        for url, handlers in ROUTE.findall(path.read_text()):
            for method in METHOD.findall(handlers):
                routes[(method.upper(), GREEDY.get(url, url))] = function
    return routes


def template_routes(resources):
    routes = {}
    for rid, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        for event in res["Properties"].get("Events", {}).values():
            if event.get("Type") == "HttpApi":
                p = event["Properties"]
                routes[(p["Method"].upper(), p["Path"])] = rid
    return routes


def check_routes(resources):
    code, template = code_routes(), template_routes(resources)
    if not code:
        problem("found no axum routes under shared/src/api: has the router code moved?")
    for route, function in sorted(code.items()):
        if route not in template:
            problem(f"{route[0]} {route[1]} is served by the code but not routed in the template")
        elif template[route] != function:
            problem(f"{route[0]} {route[1]} is routed to {template[route]}, served by {function}")
    for route, function in sorted(template.items()):
        if route not in code:
            problem(f"{route[0]} {route[1]} is routed to {function} but no router serves it")


# ------------------------------------------------------------------ 3. state machines
def check_state_machines(resources):
    files = {f"statemachine/{p.name}" for p in (ROOT / "statemachine").glob("*.asl.json")}
    seen = set()
    for rid, res in resources.items():
        if res.get("Type") != "AWS::Serverless::StateMachine":
            continue
        props = res["Properties"]
        uri = props.get("DefinitionUri")
        seen.add(uri)
        if uri not in files:
            problem(f"{rid}: DefinitionUri {uri!r} is not a file in statemachine/")
            continue
        wanted = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", (ROOT / uri).read_text()))
        given = set(props.get("DefinitionSubstitutions", {}))
        for name in sorted(wanted - given):
            problem(f"{rid}: {uri} uses ${{{name}}} but DefinitionSubstitutions lacks it")
        if props.get("Tracing", {}).get("Enabled") is not True:
            problem(f"{rid}: Tracing is not enabled")
    for missing in sorted(files - seen):
        problem(f"{missing} has no AWS::Serverless::StateMachine")


# ------------------------------------------------------------------ 4. functions
def check_functions(template):
    resources = template["Resources"]
    crates = {p.parent.name for p in (ROOT / "functions").glob("*/Cargo.toml")}
    binaries = {}
    for rid, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        meta = res.get("Metadata", {})
        binary = meta.get("BuildProperties", {}).get("Binary")
        if meta.get("BuildMethod") != "rust-cargolambda":
            problem(f"{rid}: Metadata.BuildMethod is not rust-cargolambda")
        if binary not in crates:
            problem(f"{rid}: BuildProperties.Binary {binary!r} is not a crate in functions/")
        binaries.setdefault(binary, []).append(rid)
    for crate in sorted(crates):
        if len(binaries.get(crate, [])) != 1:
            problem(f"functions/{crate} is deployed by {binaries.get(crate, [])}, not exactly one function")
    globals_fn = template.get("Globals", {}).get("Function", {})
    expected = {
        "Runtime": "provided.al2023",
        "Architectures": ["arm64"],
        "Handler": "bootstrap",
        "Tracing": "Active",
    }
    for key, value in expected.items():
        if globals_fn.get(key) != value:
            problem(f"Globals.Function.{key} is {globals_fn.get(key)!r}, expected {value!r}")


# ------------------------------------------------------------------ 5. environment
def check_environment(template):
    config = (ROOT / "shared/src/config.rs").read_text()
    known = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', config))
    params = template.get("Parameters", {})
    envs = [("Globals", template.get("Globals", {}).get("Function", {}))]
    envs += [
        (rid, res["Properties"])
        for rid, res in template["Resources"].items()
        if res.get("Type") == "AWS::Serverless::Function"
    ]
    for owner, props in envs:
        variables = props.get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            if name not in known:
                problem(f"{owner}: {name} is not a variable shared/src/config.rs reads")
            if name in SECRETS:
                ref = value.get("Ref") if isinstance(value, dict) else None
                param = params.get(ref, {})
                if not param.get("NoEcho"):
                    problem(f"{owner}: {name} does not come from a NoEcho parameter")
                elif param.get("Default", "") != "":
                    problem(f"{owner}: {name}'s parameter {ref} has a default value")


# ------------------------------------------------------------------ 6. table
def check_table(resources):
    tables = [r for r in resources.values() if r.get("Type") == "AWS::DynamoDB::Table"]
    if len(tables) != 1:
        problem(f"expected one DynamoDB table, found {len(tables)}")
        return
    p = tables[0]["Properties"]
    ttl = p.get("TimeToLiveSpecification", {})
    actual = {
        "BillingMode": p.get("BillingMode"),
        "AttributeDefinitions": sorted(
            (a["AttributeName"], a["AttributeType"]) for a in p.get("AttributeDefinitions", [])
        ),
        "KeySchema": [(k["AttributeName"], k["KeyType"]) for k in p.get("KeySchema", [])],
        "GlobalSecondaryIndexes": {
            g["IndexName"]: (
                [(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]],
                g["Projection"]["ProjectionType"],
            )
            for g in p.get("GlobalSecondaryIndexes", [])
        },
        "TimeToLive": (ttl.get("AttributeName"), ttl.get("Enabled")),
    }
    for key, want in TABLE_SCHEMA.items():
        if actual[key] != want:
            problem(f"table {key}: {actual[key]} != the store's {want}")


def main():
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "template.yaml")
    template = yaml_parse(path.read_text())
    resources = template["Resources"]
    check_routes(resources)
    check_state_machines(resources)
    check_functions(template)
    check_environment(template)
    check_table(resources)
    check_cycles(transformed(json.loads(json.dumps(template)))["Resources"])
    if problems:
        for message in problems:
            print(f"{path.name}: {message}", file=sys.stderr)
        sys.exit(1)
    print(f"{path.name}: routes, state machines, functions, environment, table and dependencies agree with the code")


if __name__ == "__main__":
    main()
