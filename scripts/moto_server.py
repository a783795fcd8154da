"""moto's server, with DynamoDB requests applied one at a time.

moto's server is threaded and applies a TransactWriteItems (or a conditional
PutItem) step by step with no isolation from concurrent requests, so two racing
conditional writes can both succeed there, and a cancelled transaction restores
a snapshot that can erase a concurrent one. DynamoDB itself never allows either.
Serializing DynamoDB requests gives the tests DynamoDB's semantics (every
request atomic); the adapter's conditions still decide who wins, so a missing
condition still fails the racing tests. SQS and Step Functions are untouched.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT (moto_server's options).
"""
import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_lock = threading.RLock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action

if __name__ == "__main__":
    sys.exit(main())
