"""Zeppelin's Python SDK: the coordination store and the replica contract.

Standard library only. `Client` speaks etcd's v3 JSON gateway, so the same
code runs against zeppelin's embedded store and against a real etcd:

    import zeppelin
    store = zeppelin.Client()                 # $ZEPPELIN_ETCD_ENDPOINTS, $ZEPPELIN_ETCD_TOKEN
    store.put("config/mode", "fast")
    with store.lock("nightly-backup"):
        ...
    me = zeppelin.replica()                   # this replica's identity, from its environment
    peers = store.peers(me.system, me.service)
"""
from .client import (Client, Event, EtcdError, KeyValue, Lease, Leadership, TxnResult, compare_create_revision,
                     compare_mod_revision, compare_value, compare_version, op_delete, op_get, op_put)
from .replica import Replica, replica

__all__ = [
    "Client", "Event", "EtcdError", "KeyValue", "Lease", "Leadership", "TxnResult", "Replica", "replica",
    "compare_value", "compare_version", "compare_create_revision", "compare_mod_revision",
    "op_get", "op_put", "op_delete",
]
