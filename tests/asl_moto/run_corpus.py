#!/usr/bin/env python3
"""Run the ASL conformance corpus (tests/fixtures/asl/NNN-*.json) against moto's Step Functions.

Every case is executed on a moto server (start one with `scripts/moto.sh start`):

  1. a fresh SQS queue is created and `${TaskQueueUrl}` in the definition is replaced by its URL;
  2. the state machine is created and an execution named `corpus-NNN` is started;
  3. an *echo worker* polls the queue and answers every message whose JSON body carries a
     `task_token`:  a body with `"no_answer": true` is never answered; a body with an object
     field `"fail": {"error": E, "cause": C}` gets SendTaskFailure(error=E, cause=C); any other
     body gets SendTaskSuccess with the body minus `task_token` as output;
  4. DescribeExecution is polled until the execution ends (or the per-case timeout passes), the
     error/cause of a failed execution are read from the ExecutionFailed history event, and the
     result is compared with `expected` -- or with `expected_moto` when the case declares a
     `"moto": {"deviation": ...}`. Cases with `"moto": {"skip": ...}` are reported as skipped.

Output: one line per case (`ok`, `FAIL` with a diff, `skip` with the reason) and a final line
`N passed, N failed, N skipped`; the exit status is 1 if any case failed.

Usage: scripts/moto.sh start
       .venv-emul/bin/python tests/asl_moto/run_corpus.py [--endpoint URL] [--only NNN[,NNN]] [--history]
(the script re-executes itself with .venv-emul/bin/python when boto3 is missing)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import re
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = ROOT / "tests" / "fixtures" / "asl"
VENV_PYTHON = ROOT / ".venv-emul" / "bin" / "python"
ROLE_ARN = "arn:aws:iam::123456789012:role/test"
QUEUE_PLACEHOLDER = "${TaskQueueUrl}"
CASE_TIMEOUT_S = 15.0
FILE_RE = re.compile(r"^(\d{3})-[a-z0-9][a-z0-9-]*\.json$")

try:
    import boto3
    from botocore.config import Config
except ImportError:  # re-run under the venv that scripts/moto.sh creates
    if VENV_PYTHON.exists() and Path(sys.executable).resolve() != VENV_PYTHON.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit("boto3 is missing: run scripts/moto.sh start (it creates .venv-emul) first")


# ----------------------------------------------------------------------------- comparison


def same(a, b) -> bool:
    """JSON equality that, unlike ==, keeps booleans apart from numbers (True != 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def compare(expected: dict, actual: dict) -> list[str]:
    """Differences between an `expected` block and the observed result (empty when equal).

    A SUCCEEDED result whose output is not JSON (moto returns string outputs unquoted) is
    reported as `output_raw`; only an `expected_moto` block can expect that.
    """
    diffs = []
    if expected.get("status") != actual.get("status"):
        diffs.append(f"status: expected {expected.get('status')}, got {actual.get('status')}")
    elif expected["status"] == "SUCCEEDED":
        if "output_raw" in expected or "output_raw" in actual:
            ok = "output_raw" in expected and expected["output_raw"] == actual.get("output_raw")
        else:
            ok = same(expected.get("output"), actual.get("output"))
        if not ok:
            diffs.append(f"output:\n      expected {show(expected)}\n      got      {show(actual)}")
    elif expected["status"] == "FAILED":
        if expected.get("error") != actual.get("error"):
            diffs.append(f"error: expected {expected.get('error')!r}, got {actual.get('error')!r}")
        if "cause" in expected and expected["cause"] != actual.get("cause"):
            diffs.append(f"cause: expected {expected['cause']!r}, got {actual.get('cause')!r}")
    if actual.get("note"):
        diffs.append(actual["note"])
    return diffs


def show(result: dict) -> str:
    if "output_raw" in result:
        return f"(not JSON) {result['output_raw']!r}"
    return json.dumps(result.get("output"), sort_keys=True, ensure_ascii=False)


# ----------------------------------------------------------------------------- corpus


def load_cases(only: set[str] | None) -> tuple[list[dict], list[str]]:
    cases, problems, seen = [], [], {}
    for path in sorted(glob.glob(str(CORPUS_DIR / "*.json"))):
        name = os.path.basename(path)
        m = FILE_RE.match(name)
        if not m:
            problems.append(f"{name}: file name is not NNN-short-name.json")
            continue
        nnn = m.group(1)
        if nnn in seen:
            problems.append(f"{name}: number {nnn} already used by {seen[nnn]}")
            continue
        seen[nnn] = name
        if only and nnn not in only:
            continue
        try:
            case = json.loads(Path(path).read_text())
        except ValueError as e:
            problems.append(f"{name}: invalid JSON: {e}")
            continue
        err = validate_case(case)
        if err:
            problems.append(f"{name}: {err}")
            continue
        case["_nnn"], case["_name"] = nnn, name[: -len(".json")]
        cases.append(case)
    return cases, problems


def validate_case(case: dict) -> str | None:
    for key in ("comment", "definition", "input", "expected"):
        if key not in case:
            return f"missing {key!r}"
    exp = case["expected"]
    if exp.get("status") not in ("SUCCEEDED", "FAILED"):
        return "expected.status must be SUCCEEDED or FAILED"
    if exp["status"] == "SUCCEEDED" and "output" not in exp:
        return "expected.output missing"
    if exp["status"] == "FAILED" and not isinstance(exp.get("error"), str):
        return "expected.error missing"
    moto = case.get("moto") or {}
    if "deviation" in moto and "expected_moto" not in case and "expected_moto" not in moto:
        return "moto.deviation without expected_moto"
    return None


def substitute(value, queue_url: str):
    if isinstance(value, str):
        return value.replace(QUEUE_PLACEHOLDER, queue_url)
    if isinstance(value, list):
        return [substitute(v, queue_url) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, queue_url) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------- execution


class Runner:
    def __init__(self, endpoint: str):
        cfg = Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=64)
        kw = dict(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=cfg,
        )
        self._local = threading.local()
        self._kw = kw
        self.run_id = uuid.uuid4().hex[:8]
        self.with_history = False
        self.verbose = False

    def client(self, service: str):
        # boto3 clients are thread-safe, but one per thread avoids connection-pool warnings
        key = f"c_{service}"
        c = getattr(self._local, key, None)
        if c is None:
            c = boto3.session.Session().client(service, **self._kw)
            setattr(self._local, key, c)
        return c

    def run_case(self, case: dict) -> dict:
        sqs, sfn = self.client("sqs"), self.client("stepfunctions")
        nnn = case["_nnn"]
        queue_url = sqs.create_queue(QueueName=f"asl-corpus-{nnn}-{self.run_id}")["QueueUrl"]
        sm_arn = None
        try:
            definition = substitute(case["definition"], queue_url)
            try:
                sm_arn = sfn.create_state_machine(
                    name=f"asl-corpus-{nnn}-{self.run_id}",
                    definition=json.dumps(definition, ensure_ascii=False),
                    roleArn=ROLE_ARN,
                )["stateMachineArn"]
            except Exception as e:  # noqa: BLE001 - any rejection is a result to report
                return {"status": "CREATE_FAILED", "note": f"CreateStateMachine: {e}"}
            exec_arn = sfn.start_execution(
                stateMachineArn=sm_arn, name=f"corpus-{nnn}", input=json.dumps(case["input"])
            )["executionArn"]
            deadline = time.monotonic() + CASE_TIMEOUT_S
            status = "RUNNING"
            while True:
                self.echo_worker_pass(sqs, sfn, queue_url)
                desc = sfn.describe_execution(executionArn=exec_arn)
                status = desc["status"]
                if status != "RUNNING" or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            if status == "RUNNING":
                try:
                    sfn.stop_execution(executionArn=exec_arn, error="corpus.Timeout")
                except Exception:  # noqa: BLE001
                    pass
                return {"status": "RUNNING", "note": f"still RUNNING after {CASE_TIMEOUT_S:.0f} s"}
            result: dict = {"status": status}
            if self.with_history:
                result["history"] = self.history_lines(sfn, exec_arn)
            if status == "SUCCEEDED":
                raw = desc.get("output")
                try:
                    result["output"] = json.loads(raw)
                except (TypeError, ValueError):
                    result["output_raw"] = raw
            elif status == "FAILED":
                details = self.failure_details(sfn, exec_arn)
                for k in ("error", "cause"):
                    if details.get(k) is not None:
                        result[k] = details[k]
            return result
        finally:
            try:
                if sm_arn:
                    sfn.delete_state_machine(stateMachineArn=sm_arn)
                sqs.delete_queue(QueueUrl=queue_url)
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass

    @staticmethod
    def history_lines(sfn, exec_arn: str) -> list[str]:
        lines, kwargs = [], {"executionArn": exec_arn, "maxResults": 1000}
        for event in sfn.get_execution_history(**kwargs)["events"]:
            details = {k: v for k, v in event.items() if k.endswith("EventDetails")}
            text = json.dumps(next(iter(details.values()), {}), default=str)
            lines.append(f"{event['id']:>3} {event['type']} {text[:400]}")
        return lines

    @staticmethod
    def failure_details(sfn, exec_arn: str) -> dict:
        kwargs = {"executionArn": exec_arn, "reverseOrder": True, "maxResults": 100}
        for event in sfn.get_execution_history(**kwargs)["events"]:
            if event["type"] == "ExecutionFailed":
                return event.get("executionFailedEventDetails", {})
        return {}

    def echo_worker_pass(self, sqs, sfn, queue_url: str) -> None:
        """One poll of the echo worker: answer every task-token message currently queued."""
        while True:
            msgs = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not msgs:
                return
            for msg in msgs:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
                try:
                    body = json.loads(msg["Body"])
                except ValueError:
                    continue
                if not isinstance(body, dict) or not isinstance(body.get("task_token"), str):
                    continue
                if body.get("no_answer") is True:
                    continue
                token = body.pop("task_token")
                fail = body.get("fail")
                try:
                    if isinstance(fail, dict):
                        kw = {"taskToken": token}
                        if fail.get("error") is not None:
                            kw["error"] = str(fail["error"])
                        if fail.get("cause") is not None:
                            kw["cause"] = str(fail["cause"])
                        sfn.send_task_failure(**kw)
                    else:
                        sfn.send_task_success(taskToken=token, output=json.dumps(body))
                except Exception as e:  # noqa: BLE001 - e.g. the task already timed out
                    if not self.verbose:
                        continue
                    name = queue_url.rsplit("/", 1)[-1]
                    print(f"  (echo worker on {name}: {type(e).__name__}: {e})", file=sys.stderr)


def judge(case: dict, actual: dict) -> tuple[str, str]:
    moto = case.get("moto") or {}
    if "deviation" in moto:
        expected = case.get("expected_moto", moto.get("expected_moto"))
        diffs = compare(expected, actual)
        if diffs:
            return "FAIL", "(declared moto deviation) " + "\n    ".join(diffs)
        return "ok", f"(moto deviation: {moto['deviation']})"
    diffs = compare(case["expected"], actual)
    return ("FAIL", "\n    ".join(diffs)) if diffs else ("ok", "")


def main() -> int:
    port = os.environ.get("MOTO_PORT", "5123")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", default=f"http://127.0.0.1:{port}",
                    help="moto server URL (default http://127.0.0.1:$MOTO_PORT, port 5123)")
    ap.add_argument("--only", help="comma-separated case numbers, e.g. 007,042")
    ap.add_argument("--jobs", type=int, default=8, help="cases run concurrently (default 8)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print deviation notes of passing cases and echo-worker errors")
    ap.add_argument("--history", action="store_true", help="print the execution history of failing cases")
    args = ap.parse_args()
    only = {n.strip().zfill(3) for n in args.only.split(",")} if args.only else None

    started = time.monotonic()
    cases, problems = load_cases(only)
    runner = Runner(args.endpoint)
    runner.with_history = args.history
    runner.verbose = args.verbose
    try:
        runner.client("sqs").list_queues()
    except Exception as e:  # noqa: BLE001
        print(f"cannot reach moto at {args.endpoint}: {e}\n(start it with scripts/moto.sh start)")
        return 1

    lines: dict[str, str] = {}
    passed = skipped = 0
    failed = len(problems)
    runnable = []
    for case in cases:
        reason = (case.get("moto") or {}).get("skip")
        if reason:
            lines[case["_nnn"]] = f"skip {case['_name']}: {reason}"
            skipped += 1
        else:
            runnable.append(case)

    def one(case: dict) -> tuple[dict, dict, str, str]:
        try:
            actual = runner.run_case(case)
        except Exception as e:  # noqa: BLE001 - report, keep going
            actual = {"status": "ERROR", "note": f"{type(e).__name__}: {e}"}
        return (case, actual, *judge(case, actual))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for fut in concurrent.futures.as_completed([pool.submit(one, c) for c in runnable]):
            case, actual, verdict, detail = fut.result()
            if verdict == "ok":
                passed += 1
                note = "" if not detail else f" {detail}" if args.verbose else " (moto deviation)"
                lines[case["_nnn"]] = f"ok   {case['_name']}{note}"
            else:
                failed += 1
                text = f"FAIL {case['_name']}\n    {detail}"
                if actual.get("history"):
                    text += "\n      " + "\n      ".join(actual["history"])
                lines[case["_nnn"]] = text
    for p in problems:
        print(f"FAIL {p}")
    for nnn in sorted(lines):
        print(lines[nnn])
    print(f"# {len(cases)} cases in {time.monotonic() - started:.1f} s against {args.endpoint}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
