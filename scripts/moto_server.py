"""moto's server, with DynamoDB requests applied one at a time.

moto's server is threaded and applies a TransactWriteItems (or a conditional
PutItem) step by step with no isolation from concurrent requests, so two racing
conditional writes can both succeed there, and a cancelled transaction restores
a snapshot that can erase a concurrent one. DynamoDB itself never allows either.
Serializing DynamoDB requests gives the tests DynamoDB's semantics (every
request atomic); the adapter's conditions still decide who wins, so a missing
condition still fails the racing tests. SQS and Step Functions are untouched.

moto's Step Functions engine makes a new boto3 client for every task it runs
(`parser/asl/utils/boto_client.py`), and each client made stays in memory: the
server grew by about 1.4 GB a minute under the AWS soak. Clients are
thread-safe, so one per service, region and endpoint is made and kept.

moto's TransactWriteItems deep-copies each table it touches, whole, once per
item, to roll back a cancelled transaction: with a few thousand items that
made every transaction slower than the last and the server's memory grow by
about a gigabyte a minute under the AWS soak. Here only the items the
transaction names are kept, and put back when it is cancelled (requests are
serialized, so nothing else changes them meanwhile); moto's own copy of the
table is skipped.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT (moto_server's options).
"""
import copy
import random
import sys
import threading

import boto3
import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.stepfunctions.parser.asl.component.intrinsic.function.statesfunction.math_operations import (
    math_random,
)
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.server import main

_lock = threading.RLock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action


class _CopyKeepingTables:
    """`copy` for moto's DynamoDB backend, whose deep copy of a table is the table itself."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


_transact_write_items = DynamoDBBackend.transact_write_items


def _touched(backend, transact_items):
    """(table, hash, range, a copy of the item or None) for each item the transaction names."""
    kept = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables[op["TableName"]]
            attrs = op["Item"] if op_type == "Put" else op["Key"]
            hash_value = DynamoType(attrs[table.hash_key_attr])
            range_value = (
                DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
            )
            current = table.get_item(hash_value, range_value)
        except Exception:
            continue  # moto's own checks report what is wrong with this one
        kept.append((table, hash_value, range_value, copy.deepcopy(current)))
    return kept


def _transact_keeping_touched_items(self, transact_items):
    kept = _touched(self, transact_items)
    dynamodb_models.copy = _CopyKeepingTables()
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_value, range_value, item in reversed(kept):
            if item is None:
                table.delete_item(hash_value, range_value)
            elif range_value is not None:
                table.items[hash_value][range_value] = item
            else:
                table.items[hash_value] = item
        raise
    finally:
        dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = _transact_keeping_touched_items

_callback_eval_execution = StateTaskServiceCallback._eval_execution


def _eval_execution_with_its_own_token(self, env):
    if "Task" in env.states.context_object.context_object_data:
        token = env.states.context_object.update_task_token()
        env.callback_pool_manager.add(token)
    return _callback_eval_execution(self, env)


StateTaskServiceCallback._eval_execution = _eval_execution_with_its_own_token

_send_task_failure = StepFunctionResponse.send_task_failure


def _send_task_failure_with_its_cause(self):
    backend = self.stepfunction_backend
    if not isinstance(backend, StepFunctionsParserBackend):
        return _send_task_failure(self)
    backend.send_task_failure(
        self._get_param("taskToken"),
        error=self._get_param("error"),
        cause=self._get_param("cause"),
    )
    return _send_task_failure.__globals__["EmptyResult"]()


StepFunctionResponse.send_task_failure = _send_task_failure_with_its_cause

_clients = {}
_clients_lock = threading.Lock()
_make_client = boto3.client


def _shared_client(*args, **kwargs):
    # The engine's clients differ only in these; its Config is the same each time.
    key = (args, tuple(sorted((k, v) for k, v in kwargs.items() if k != "config")))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(*args, **kwargs)
        return client


boto3.client = _shared_client



class _EndExclusiveRandom(random.Random):
    def randint(self, a, b):
        return self.randrange(a, b) if b > a else a


class _RandomWithEndExclusive:
    Random = _EndExclusiveRandom

    def __getattr__(self, name):
        return getattr(random, name)


math_random.random = _RandomWithEndExclusive()

if __name__ == "__main__":
    sys.exit(main())
