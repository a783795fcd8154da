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
5. Every environment variable is one shared/src/config.rs reads; no secret is in an
   environment: each function's SECRET_ARN names a secret of its own holding exactly the values
   shared/src/lambda/function.rs says its code uses, each from a NoEcho parameter.
6. The DynamoDB table has exactly the store's schema, deletion protection and point-in-time
   recovery.
7. IAM: each function is granted exactly the AWS actions its code calls. The AWS SDK operations
   are read from the adapters' sources and mapped to IAM actions; which of them each function
   reaches is declared once below (REACHES) and checked both ways: a granted action no code
   calls, an action the code calls that no function is granted (or that NOT_ON_LAMBDA does not
   explain), or a declaration the template does not grant, each fail.
8. Operations: every function logs to a log group of its own with a retention, every log group
   has one, the API writes access logs, the state machines log, and every function has an
   errors and a throttles alarm.
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
    "DeletionProtectionEnabled": True,
    "PointInTimeRecovery": True,
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
ROUTE = re.compile(r'\.route\(\s*"([^"]+)",\s*((?:[a-z]+\([^()]*\)\.?)+)\s*,?\s*\)', re.S)
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


# ------------------------------------------------------------------ 5. environment and secrets
def functions(template):
    return {
        rid: res
        for rid, res in template["Resources"].items()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def binary_of(res):
    return res.get("Metadata", {}).get("BuildProperties", {}).get("Binary", "")


def config_secrets():
    """shared/src/config.rs's SECRETS: every secret, on Lambda read from Secrets Manager."""
    config = (ROOT / "shared/src/config.rs").read_text()
    found = re.search(r"pub const SECRETS: &\[&str\] = &\[(.*?)\];", config, re.S)
    if not found:
        problem("found no `pub const SECRETS` in shared/src/config.rs: has it moved?")
        return set()
    return set(re.findall(r'"([A-Z0-9_]+)"', found.group(1)))


def function_secrets():
    """shared/src/lambda/function.rs: the secrets each function's code uses, by binary."""
    text = (ROOT / "shared/src/lambda/function.rs").read_text()
    arms = re.findall(r"Self::(\w+) => &\[(.*?)\]", text, re.S)
    if not arms:
        problem("found no `Function::secrets` table in shared/src/lambda/function.rs")
    return {name.lower(): set(re.findall(r'"([A-Z0-9_]+)"', body)) for name, body in arms}


def env_name(parameter):
    """ApiKey -> API_KEY: the variable a parameter's value becomes."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", parameter).upper()


def check_environment(template):
    config = (ROOT / "shared/src/config.rs").read_text()
    known = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', config))
    secrets = config_secrets()
    envs = [("Globals", template.get("Globals", {}).get("Function", {}))]
    envs += list(functions(template).items())
    for owner, props in envs:
        variables = props.get("Properties", props).get("Environment", {}).get("Variables", {})
        for name in variables:
            if name not in known:
                problem(f"{owner}: {name} is not a variable shared/src/config.rs reads")
            if name in secrets:
                problem(
                    f"{owner}: the secret {name} is in the environment (anyone with "
                    "lambda:GetFunctionConfiguration reads it): put it in the function's secret"
                )
    check_secrets(template)


def check_secrets(template):
    resources, params = template["Resources"], template.get("Parameters", {})
    wanted = function_secrets()
    owners = {}
    for rid, res in functions(template).items():
        binary = binary_of(res)
        variables = res["Properties"].get("Environment", {}).get("Variables", {})
        ref = variables.get("SECRET_ARN")
        secret_id = ref.get("Ref") if isinstance(ref, dict) else None
        secret = resources.get(secret_id, {})
        if secret.get("Type") != "AWS::SecretsManager::Secret":
            problem(f"{rid}: SECRET_ARN is not a Ref to an AWS::SecretsManager::Secret")
            continue
        owners.setdefault(secret_id, []).append(rid)
        text = secret.get("Properties", {}).get("SecretString", {})
        text = text.get("Fn::Sub") if isinstance(text, dict) else None
        if not isinstance(text, str):
            problem(f"{secret_id}: SecretString is not a !Sub of the parameters")
            continue
        try:
            json.loads(re.sub(r"\$\{\w+\}", "x", text))
        except ValueError as e:
            problem(f"{secret_id}: SecretString is not a JSON object ({e})")
        pairs = re.findall(r'"([A-Z0-9_]+)":\s*"\$\{(\w+)\}"', text)
        held = {name for name, _ in pairs}
        if len(held) != len(pairs):
            problem(f"{secret_id}: SecretString names a value twice")
        want = wanted.get(binary)
        if want is None:
            problem(f"{rid}: shared/src/lambda/function.rs lists no secrets for {binary!r}")
        elif held != want:
            problem(
                f"{rid}: its secret {secret_id} holds {sorted(held)}, but "
                f"shared/src/lambda/function.rs says the {binary} function uses {sorted(want)}"
            )
        for name, parameter in pairs:
            param = params.get(parameter, {})
            if env_name(parameter) != name:
                problem(f"{secret_id}: {name} comes from the parameter {parameter}")
            if not param.get("NoEcho"):
                problem(f"{secret_id}: {name}'s parameter {parameter} is not NoEcho")
            elif param.get("Default", "") != "":
                problem(f"{secret_id}: {name}'s parameter {parameter} has a default value")
    for secret_id, rids in owners.items():
        if len(rids) > 1:
            problem(f"{secret_id} is the secret of {rids}: each function has its own")


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
        "DeletionProtectionEnabled": p.get("DeletionProtectionEnabled"),
        "PointInTimeRecovery": p.get("PointInTimeRecoverySpecification", {}).get(
            "PointInTimeRecoveryEnabled"
        ),
    }
    for key, want in TABLE_SCHEMA.items():
        if actual[key] != want:
            problem(f"table {key}: {actual[key]} != the store's {want}")


# ------------------------------------------------------------------ 7. IAM
# The files that call AWS: every SDK client lives in these adapters (checked below).
AWS_SOURCES = ["shared/src/aws/*.rs", "shared/src/engine/stepfunctions.rs", "shared/src/queue/sqs.rs",
               "shared/src/store/dynamodb/*.rs"]
# Each SDK operation the adapters may call, and the IAM action that authorizes it.
OP_ACTION = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    # A transaction has no action of its own: each write in it is authorized as its kind
    # (TRANSACT_ITEM, read from the builders the store uses).
    "transact_write_items": None,
    "transact_get_items": None,
    "describe_table": "dynamodb:DescribeTable",
    "create_table": "dynamodb:CreateTable",
    "update_time_to_live": "dynamodb:UpdateTimeToLive",
    "start_execution": "states:StartExecution",
    "stop_execution": "states:StopExecution",
    "describe_execution": "states:DescribeExecution",
    "get_execution_history": "states:GetExecutionHistory",
    "list_executions": "states:ListExecutions",
    "send_task_success": "states:SendTaskSuccess",
    "send_task_failure": "states:SendTaskFailure",
    "send_task_heartbeat": "states:SendTaskHeartbeat",
    "create_state_machine": "states:CreateStateMachine",
    "update_state_machine": "states:UpdateStateMachine",
    "describe_state_machine": "states:DescribeStateMachine",
    "list_state_machines": "states:ListStateMachines",
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "get_queue_attributes": "sqs:GetQueueAttributes",
    "get_queue_url": "sqs:GetQueueUrl",
    "list_dead_letter_source_queues": "sqs:ListDeadLetterSourceQueues",
    "start_message_move_task": "sqs:StartMessageMoveTask",
    "purge_queue": "sqs:PurgeQueue",
    "get_secret_value": "secretsmanager:GetSecretValue",
}
TRANSACT_ITEM = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# Which actions each function's code reaches, and why. Every function opens the store (its
# schema checked with DescribeTable at each cold start), reads and conditionally writes runs,
# artifacts, events and spans (GetItem, PutItem, UpdateItem, Query; transactions of puts and
# condition checks) and reads its own secret at cold start.
STORE = {
    "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable", "dynamodb:GetItem",
    "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem",
}
# Store::prune's deletes: only its code deletes (PRUNE_ONLY, checked), and only the callbacks
# function's hourly schedule runs it.
PRUNE = {"dynamodb:BatchWriteItem", "dynamodb:DeleteItem"}
COMPLETE_TASKS = {"states:SendTaskSuccess", "states:SendTaskFailure"}
OWN_SECRET = {"secretsmanager:GetSecretValue"}
# A start retried after a lost answer looks up the execution it may have started.
START_RUNS = {"states:StartExecution", "states:DescribeExecution"}
# A failed SQS record comes back after a short, growing delay it sets itself, on a queue it
# finds by its ARN.
SHORT_RETRIES = {"sqs:ChangeMessageVisibility", "sqs:GetQueueUrl"}
REACHES = {
    # Brendan's tools: start_run, get_run_status (the execution's history), approve_hitl_gate.
    "ChatFunction": STORE | OWN_SECRET | COMPLETE_TASKS | START_RUNS
    | {"states:GetExecutionHistory"},
    # Verify, store once, hand over to the callback queue.
    "WebhookFunction": STORE | OWN_SECRET | {"sqs:SendMessage"},
    # An approval or a rejection completes the gate's task token.
    "HitlFunction": STORE | OWN_SECRET | COMPLETE_TASKS,
    # Start, cancel, evidence and graph (history); /metrics reads the queues' depths.
    "RunsFunction": STORE | OWN_SECRET | START_RUNS
    | {"states:StopExecution", "states:GetExecutionHistory", "sqs:GetQueueAttributes"},
    # A task completes its token (a dead-lettered one fails it); a provider job whose callback
    # came first hands that stored callback over to the callback queue.
    "WorkerFunction": STORE | OWN_SECRET | COMPLETE_TASKS | SHORT_RETRIES | {"sqs:SendMessage"},
    # A settled job completes its persona's token; the reconciler's sweep starts runs whose
    # start was throttled; the hourly schedule prunes.
    "CallbacksFunction": STORE | PRUNE | OWN_SECRET | COMPLETE_TASKS | SHORT_RETRIES | START_RUNS,
}
# Actions the code calls that no function is granted, and who calls them instead.
NOT_ON_LAMBDA = {
    "dynamodb:CreateTable": "the store creates a missing table (locally, on moto); the template creates it on AWS",
    "dynamodb:UpdateTimeToLive": "with a table the store creates; the template sets the TTL on AWS",
    "states:CreateStateMachine": "`mw statemachine deploy`; the template deploys them on AWS",
    "states:UpdateStateMachine": "`mw statemachine deploy`",
    "states:ListStateMachines": "`mw` finds state machines by name; functions get STATE_MACHINE_ARNS",
    "states:SendTaskHeartbeat": "the Engine port offers it; no state sets HeartbeatSeconds",
    "sqs:ReceiveMessage": "`mw worker` polls; on Lambda the SQS event source does (SAM grants it)",
    "sqs:DeleteMessage": "`mw worker`, `mw dlq`; on Lambda the SQS event source",
}
# Engine and queue port methods called above the adapters, by the action they end in: a call
# from code the functions run must be reached by one (it is not in NOT_ON_LAMBDA).
PORT_CALLS = {
    "start_execution": "states:StartExecution",
    "stop_execution": "states:StopExecution",
    "describe_execution": "states:DescribeExecution",
    "get_execution_history": "states:GetExecutionHistory",
    "send_task_success": "states:SendTaskSuccess",
    "send_task_failure": "states:SendTaskFailure",
    "send_task_heartbeat": "states:SendTaskHeartbeat",
    "hand_over": "sqs:SendMessage",
    "depth": "sqs:GetQueueAttributes",
}
# The code the functions run above the adapters (the local engine and stores are not AWS).
FUNCTION_CODE = ["shared/src/api", "shared/src/pipeline", "shared/src/personas",
                 "shared/src/lambda", "shared/src/wiring.rs", "functions"]
# Where a deleting write may be built: Store::prune and what it calls (transact_item only
# translates a Write into the SDK's type; already_applied only reads whether one took effect).
PRUNE_ONLY = {
    "Write::Delete(": {"prune", "prune_run", "transact_item", "already_applied"},
    "delete_all(": {"prune", "prune_run"},
    ".batch_write_item()": {"delete_all"},
}


def enclosing_fn(text, index):
    names = re.findall(r"\bfn\s+(\w+)", text[:index])
    return names[-1] if names else "?"


def code_actions():
    """{action: {file:fn, ...}} of every AWS call in the adapters."""
    found = {}
    files = sorted({f for pattern in AWS_SOURCES for f in ROOT.glob(pattern)})
    if not files:
        problem("found no AWS adapters under shared/src: has the code moved?")
    for path in files:
        text = path.read_text()
        rel = path.relative_to(ROOT)
        calls = re.finditer(r"(?:\bclient|\bonce|Client::new\([^()]*\))\s*\.\s*([a-z_]+)\(\)", text)
        for m in calls:
            op = m.group(1)
            if op not in OP_ACTION:
                problem(f"{rel}: the SDK operation {op}() is not in OP_ACTION: add its IAM action")
                continue
            if OP_ACTION[op]:
                found.setdefault(OP_ACTION[op], set()).add(f"{rel}:{enclosing_fn(text, m.start())}")
        for m in re.finditer(r"\b(Put|Update|Delete|ConditionCheck)::builder\(\)", text):
            if "dynamodb" in str(rel):
                action = TRANSACT_ITEM[m.group(1)]
                found.setdefault(action, set()).add(f"{rel}:{enclosing_fn(text, m.start())}")
        for needle, allowed in PRUNE_ONLY.items():
            for m in re.finditer(re.escape(needle), text):
                fn = enclosing_fn(text, m.end())
                if fn not in allowed and not text[: m.start()].rstrip().endswith("fn"):
                    problem(
                        f"{rel}: {needle} in fn {fn}, outside {sorted(allowed)}: deletes are "
                        "granted only to the pruning schedule's function (REACHES, PRUNE)"
                    )
    for path in ROOT.glob("shared/src/**/*.rs"):
        if path in files:
            continue
        if re.search(r"aws_sdk_\w+::Client::(new|from_conf)", path.read_text()):
            problem(f"{path.relative_to(ROOT)} builds an AWS client outside AWS_SOURCES")
    return found


def port_calls():
    """{action: {file, ...}} of the engine and queue calls in the code the functions run."""
    found = {}
    paths = []
    for root in FUNCTION_CODE:
        base = ROOT / root
        paths += [base] if base.is_file() else sorted(base.rglob("*.rs"))
    for path in paths:
        text = path.read_text()
        for m in re.finditer(r"\.(\w+)\(", text):
            if m.group(1) in PORT_CALLS and not text[: m.start()].rstrip().endswith("fn"):
                found.setdefault(PORT_CALLS[m.group(1)], set()).add(str(path.relative_to(ROOT)))
    return found


def granted_actions(rid, res):
    """{action: [resources]} of the statements in the function's Policies."""
    granted = {}
    for policy in res["Properties"].get("Policies", []):
        if not isinstance(policy, dict) or "Statement" not in policy:
            name = policy if isinstance(policy, str) else next(iter(policy), "?")
            problem(f"{rid}: the policy {name} grants actions the check cannot see: write a Statement")
            continue
        for statement in policy["Statement"]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            resources = statement.get("Resource", [])
            for action in [actions] if isinstance(actions, str) else actions:
                if "*" in action:
                    problem(f"{rid}: the wildcard action {action}")
                granted.setdefault(action, []).extend(
                    resources if isinstance(resources, list) else [resources]
                )
    return granted


def check_iam(template):
    called = code_actions()
    reached = set().union(*REACHES.values())
    for action in sorted(called):
        if action not in reached and action not in NOT_ON_LAMBDA:
            where = ", ".join(sorted(called[action]))
            problem(f"the code calls {action} ({where}) but REACHES gives it to no function "
                    "and NOT_ON_LAMBDA does not say who else calls it")
    for action in sorted(reached | set(NOT_ON_LAMBDA)):
        if action not in called:
            problem(f"{action} is declared (REACHES or NOT_ON_LAMBDA) but no AWS code calls it")
    for action in sorted(reached & set(NOT_ON_LAMBDA)):
        problem(f"{action} is both reached by a function and in NOT_ON_LAMBDA")
    for action, where in sorted(port_calls().items()):
        if action in NOT_ON_LAMBDA:
            problem(f"{', '.join(sorted(where))} call(s) {action}, which NOT_ON_LAMBDA says no "
                    "function does: grant it to the functions that reach that code")
        elif action not in reached:
            problem(f"{', '.join(sorted(where))} call(s) {action}, which no function is granted")
    fns = functions(template)
    for rid in sorted(set(REACHES) - set(fns)):
        problem(f"REACHES names {rid}, which the template does not define")
    for rid, res in sorted(fns.items()):
        want = REACHES.get(rid)
        if want is None:
            problem(f"{rid}: not in REACHES: declare which AWS actions its code reaches")
            continue
        granted = granted_actions(rid, res)
        for action in sorted(set(granted) - want):
            problem(f"{rid} is granted {action}, which its code does not call (REACHES)")
        for action in sorted(want - set(granted)):
            problem(f"{rid}'s code calls {action}, which it is not granted")
        secret = res["Properties"].get("Environment", {}).get("Variables", {}).get("SECRET_ARN")
        for resource in granted.get("secretsmanager:GetSecretValue", []):
            if resource != secret:
                problem(f"{rid} may read the secret {resource}, not only its own ({secret})")


# ------------------------------------------------------------------ 8. operations
def check_operations(template):
    resources = template["Resources"]
    for rid, res in resources.items():
        if res.get("Type") == "AWS::Logs::LogGroup" and "RetentionInDays" not in res["Properties"]:
            problem(f"{rid}: a log group without RetentionInDays")
    alarms = {}
    for res in resources.values():
        p = res.get("Properties", {})
        if res.get("Type") == "AWS::CloudWatch::Alarm" and p.get("Namespace") == "AWS/Lambda":
            for d in p.get("Dimensions", []):
                if d.get("Name") == "FunctionName" and isinstance(d.get("Value"), dict):
                    alarms.setdefault(d["Value"].get("Ref"), set()).add(p.get("MetricName"))
    for rid, res in functions(template).items():
        group = res["Properties"].get("LoggingConfig", {}).get("LogGroup", {})
        group = group.get("Ref") if isinstance(group, dict) else None
        if resources.get(group, {}).get("Type") != "AWS::Logs::LogGroup":
            problem(f"{rid}: LoggingConfig.LogGroup is not a Ref to a log group of the stack")
        missing = {"Errors", "Throttles"} - alarms.get(rid, set())
        if missing:
            problem(f"{rid}: no alarm on its {', '.join(sorted(missing))}")
    for rid, res in resources.items():
        p = res.get("Properties", {})
        if res.get("Type") == "AWS::Serverless::HttpApi" and "AccessLogSettings" not in p:
            problem(f"{rid}: no AccessLogSettings (API access logs)")
        if res.get("Type") == "AWS::Serverless::StateMachine":
            if not p.get("Logging", {}).get("Destinations"):
                problem(f"{rid}: no Logging destination")


def main():
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "template.yaml")
    template = yaml_parse(path.read_text())
    resources = template["Resources"]
    check_routes(resources)
    check_state_machines(resources)
    check_functions(template)
    check_environment(template)
    check_table(resources)
    check_iam(template)
    check_operations(template)
    check_cycles(transformed(json.loads(json.dumps(template)))["Resources"])
    if problems:
        for message in problems:
            print(f"{path.name}: {message}", file=sys.stderr)
        sys.exit(1)
    print(f"{path.name}: routes, state machines, functions, environment, secrets, IAM, operations, table and dependencies agree with the code")


if __name__ == "__main__":
    main()
