"""A client of etcd's v3 JSON gateway: zeppelin's coordination store, or any etcd 3.4+.

Each call is one HTTP/1.1 POST (keep-alive, one connection per thread and
endpoint); streams (watch, lease keep-alive) get a connection of their own.
Keys and values are str (UTF-8) or bytes; what comes back is bytes, as etcd
stores it. Errors are EtcdError with etcd's gRPC code and message.
"""
import base64
import http.client
import json
import os
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Union
from urllib.parse import urlsplit

Bytes = Union[str, bytes]

# gRPC status codes etcd answers with (the gateway passes them on as "code").
UNAVAILABLE = 14
UNAUTHENTICATED = 16


class EtcdError(Exception):
    """An error answered by the store, or no endpoint answering (code UNAVAILABLE)."""

    def __init__(self, code: int, message: str, http_status: int = 0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class Event:
    type: str  # "PUT" or "DELETE"
    kv: KeyValue
    prev_kv: Optional[KeyValue] = None


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: List[dict] = field(default_factory=list)  # etcd's ResponseOp objects, as answered


def _b(data: Bytes) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def _enc(data: Bytes) -> str:
    return base64.b64encode(_b(data)).decode()


def _dec(text: Optional[str]) -> bytes:
    return base64.b64decode(text) if text else b""


def _prefix_end(prefix: Bytes) -> bytes:
    """The range_end that selects every key starting with `prefix` (etcd's rule)."""
    p = bytearray(_b(prefix))
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\0"  # every key


def _kv(obj: Optional[dict]) -> Optional[KeyValue]:
    if not obj:
        return None
    return KeyValue(key=_dec(obj.get("key")), value=_dec(obj.get("value")),
                    create_revision=int(obj.get("create_revision", 0)), mod_revision=int(obj.get("mod_revision", 0)),
                    version=int(obj.get("version", 0)), lease=int(obj.get("lease", 0)))


def _range(key: Bytes, prefix: bool) -> dict:
    body = {"key": _enc(key)}
    if prefix:
        body["range_end"] = _enc(_prefix_end(key))
    return body


# ---- transactions: compares and operations, as etcd's Txn takes them ----------

_OPS = {"==": "EQUAL", "=": "EQUAL", "!=": "NOT_EQUAL", "<": "LESS", ">": "GREATER"}


def _compare(key: Bytes, op: str, target: str, field_name: str, value) -> dict:
    if op not in _OPS:
        raise ValueError(f"compare operator {op!r}: expected one of ==, !=, <, >")
    return {"key": _enc(key), "result": _OPS[op], "target": target, field_name: value}


def compare_value(key: Bytes, op: str, value: Bytes) -> dict:
    return _compare(key, op, "VALUE", "value", _enc(value))


def compare_version(key: Bytes, op: str, version: int) -> dict:
    """Version 0 means the key does not exist."""
    return _compare(key, op, "VERSION", "version", str(version))


def compare_create_revision(key: Bytes, op: str, revision: int) -> dict:
    return _compare(key, op, "CREATE", "create_revision", str(revision))


def compare_mod_revision(key: Bytes, op: str, revision: int) -> dict:
    return _compare(key, op, "MOD", "mod_revision", str(revision))


def op_put(key: Bytes, value: Bytes, lease: int = 0) -> dict:
    body = {"key": _enc(key), "value": _enc(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def op_get(key: Bytes, prefix: bool = False) -> dict:
    return {"request_range": _range(key, prefix)}


def op_delete(key: Bytes, prefix: bool = False) -> dict:
    return {"request_delete_range": _range(key, prefix)}


# ---- the client ------------------------------------------------------------------


def _endpoint(url: str):
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"endpoint {url!r}: only http:// and https:// endpoints are supported")
    if not parts.hostname or not parts.port:
        raise ValueError(f"endpoint {url!r}: expected HOST:PORT")
    return parts.scheme, parts.hostname, parts.port


class Client:
    """The store at `endpoints` (a list or a comma-separated string; default
    $ZEPPELIN_ETCD_ENDPOINTS). The first endpoint that answers serves each call.
    Authentication: `token` (default $ZEPPELIN_ETCD_TOKEN), or `user` and
    `password`, exchanged for a token and renewed when it expires. https://
    endpoints are verified against `cacert` (default $ZEPPELIN_ETCD_CACERT,
    else the system's CAs)."""

    def __init__(self, endpoints=None, token: Optional[str] = None, user: Optional[str] = None,
                 password: Optional[str] = None, timeout: float = 10.0, cacert: Optional[str] = None):
        if endpoints is None:
            endpoints = os.environ.get("ZEPPELIN_ETCD_ENDPOINTS", "")
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        if not endpoints:
            raise ValueError("no endpoints: pass endpoints= or set ZEPPELIN_ETCD_ENDPOINTS")
        self._endpoints = [_endpoint(e.strip()) for e in endpoints]
        self._timeout = timeout
        self._tls = None
        if any(scheme == "https" for scheme, _, _ in self._endpoints):
            self._tls = ssl.create_default_context(cafile=cacert or os.environ.get("ZEPPELIN_ETCD_CACERT") or None)
        self._user, self._password = user, password
        self._token = token if token is not None else os.environ.get("ZEPPELIN_ETCD_TOKEN") or None
        self._local = threading.local()
        if user is not None:
            self._authenticate()

    # -- transport --

    def _new_connection(self, endpoint):
        scheme, host, port = endpoint
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    def _connection(self, endpoint):
        conns = self._local.__dict__.setdefault("conns", {})
        conn = conns.get(endpoint)
        if conn is None:
            conn = self._new_connection(endpoint)
            conns[endpoint] = conn
        return conn

    def _headers(self):
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = self._token
        return headers

    def _post_once(self, path: str, body: dict) -> dict:
        data = json.dumps(body)
        failures = []
        for endpoint in self._endpoints:
            conn = self._connection(endpoint)
            try:
                conn.request("POST", path, body=data, headers=self._headers())
                response = conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                failures.append(f"{endpoint[1]}:{endpoint[2]}: {e}")
                continue
            try:
                answer = json.loads(text) if text else {}
            except ValueError:
                raise EtcdError(UNAVAILABLE, f"{path}: not a JSON answer: {text[:200]!r}", response.status)
            if response.status != 200:
                raise EtcdError(int(answer.get("code", 2)), answer.get("message") or answer.get("error", ""),
                                response.status)
            return answer
        raise EtcdError(UNAVAILABLE, f"{path}: no endpoint answered ({'; '.join(failures)})")

    def _post(self, path: str, body: dict) -> dict:
        try:
            return self._post_once(path, body)
        except EtcdError as e:
            # A simple token expires after a while unused: get a new one once.
            if e.code == UNAUTHENTICATED and self._user is not None and path != "/v3/auth/authenticate":
                self._authenticate()
                return self._post_once(path, body)
            raise

    def _authenticate(self):
        answer = self._post_once("/v3/auth/authenticate", {"name": self._user, "password": self._password or ""})
        self._token = answer["token"]

    def _stream(self, path: str, body: dict):
        """Opens a streaming call; returns (socket, response) for one {"result": ...} per line."""
        failures = []
        for endpoint in self._endpoints:
            _, host, port = endpoint
            conn = self._new_connection(endpoint)
            try:
                conn.connect()
                sock = conn.sock  # the response outlives the connection object's hold on it
                conn.request("POST", path, body=json.dumps(body), headers=self._headers())
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                failures.append(f"{host}:{port}: {e}")
                continue
            if response.status != 200:
                answer = json.loads(response.read() or b"{}")
                response.close()
                conn.close()
                raise EtcdError(int(answer.get("code", 2)), answer.get("message", ""), response.status)
            sock.settimeout(None)  # a stream may be quiet for as long as nothing happens
            return sock, response
        raise EtcdError(UNAVAILABLE, f"{path}: no endpoint answered ({'; '.join(failures)})")

    def close(self):
        """Closes this thread's connections (others close with their threads)."""
        for conn in self._local.__dict__.pop("conns", {}).values():
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- key-value --

    def put(self, key: Bytes, value: Bytes, lease: int = 0) -> int:
        """Stores `value` under `key`; returns the store's revision after the write."""
        body = {"key": _enc(key), "value": _enc(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self._post("/v3/kv/put", body)["header"]["revision"])

    def get(self, key: Bytes, revision: int = 0) -> Optional[KeyValue]:
        kvs = self.get_range(key, revision=revision)
        return kvs[0] if kvs else None

    def get_prefix(self, prefix: Bytes, revision: int = 0, keys_only: bool = False) -> List[KeyValue]:
        return self.get_range(prefix, prefix=True, revision=revision, keys_only=keys_only)

    def get_range(self, key: Bytes, prefix: bool = False, revision: int = 0, keys_only: bool = False,
                  limit: int = 0) -> List[KeyValue]:
        body = _range(key, prefix)
        if revision:
            body["revision"] = str(revision)
        if keys_only:
            body["keys_only"] = True
        if limit:
            body["limit"] = str(limit)
        return [_kv(kv) for kv in self._post("/v3/kv/range", body).get("kvs", [])]

    def delete(self, key: Bytes, prefix: bool = False) -> int:
        """Deletes `key` (or every key under it); returns how many were deleted."""
        return int(self._post("/v3/kv/deleterange", _range(key, prefix)).get("deleted", 0))

    def delete_prefix(self, prefix: Bytes) -> int:
        return self.delete(prefix, prefix=True)

    def txn(self, compare: List[dict], success: List[dict], failure: Optional[List[dict]] = None) -> TxnResult:
        """If every compare holds, applies `success`, else `failure`, atomically."""
        answer = self._post("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure or []})
        return TxnResult(succeeded=bool(answer.get("succeeded", False)),
                         revision=int(answer["header"]["revision"]), responses=answer.get("responses", []))

    def put_if_absent(self, key: Bytes, value: Bytes, lease: int = 0) -> bool:
        """Creates `key` unless it exists; True when it was created."""
        return self.txn([compare_version(key, "==", 0)], [op_put(key, value, lease)]).succeeded

    def compact(self, revision: int) -> None:
        self._post("/v3/kv/compaction", {"revision": str(revision)})

    def status(self) -> dict:
        return self._post("/v3/maintenance/status", {})

    def watch(self, key: Bytes, prefix: bool = False, start_revision: int = 0, prev_kv: bool = False) -> "Watch":
        """Events on `key` (or under it) from `start_revision` (default: from now on)."""
        request = _range(key, prefix)
        if start_revision:
            request["start_revision"] = str(start_revision)
        if prev_kv:
            request["prev_kv"] = True
        return Watch(*self._stream("/v3/watch", {"create_request": request}))

    # -- leases --

    def lease(self, ttl: int, keep_alive: bool = False) -> "Lease":
        """Grants a lease of `ttl` seconds; with keep_alive, a thread renews it until it is revoked."""
        answer = self._post("/v3/lease/grant", {"TTL": str(ttl)})
        lease = Lease(self, int(answer["ID"]), int(answer["TTL"]))
        if keep_alive:
            lease.keep_alive_in_background()
        return lease

    def _keep_alive(self, lease_id: int) -> int:
        sock, response = self._stream("/v3/lease/keepalive", {"ID": str(lease_id)})
        try:
            line = response.readline()
        finally:
            _end_stream(sock, response)
        result = json.loads(line or b"{}").get("result", {})
        return int(result.get("TTL", 0))

    # -- locks and elections (etcd's v3lock and v3election) --

    def lock(self, name: Bytes, ttl: int = 10) -> "Lock":
        """A mutex held while the returned object is entered; the lock goes with the
        holder's lease if the process dies."""
        return Lock(self, name, ttl)

    def campaign(self, name: Bytes, value: Bytes, ttl: int = 10) -> "Leadership":
        """Blocks until this process leads election `name`, announcing `value`."""
        lease = self.lease(ttl, keep_alive=True)
        try:
            answer = self._post("/v3/election/campaign", {"name": _enc(name), "lease": str(lease.id),
                                                            "value": _enc(value)})
        except BaseException:
            lease.revoke()
            raise
        return Leadership(self, answer["leader"], lease)

    def leader(self, name: Bytes) -> Optional[bytes]:
        """The value the leader of election `name` announced; None without a leader."""
        try:
            answer = self._post("/v3/election/leader", {"name": _enc(name)})
        except EtcdError as e:
            if "no leader" in e.message:
                return None
            raise
        kv = _kv(answer.get("kv"))
        return kv.value if kv else None

    # -- zeppelin's service discovery (docs/store.md) --

    def peers(self, system: str, service: str, prefix: str = "/zeppelin/") -> List[dict]:
        """The running replicas of a service, by ordinal: {"address", "ports", "replica", ...}."""
        kvs = self.get_prefix(f"{prefix}services/{system}/{service}/")
        return sorted((json.loads(kv.value) for kv in kvs), key=lambda r: r.get("replica", 0))


def _end_stream(sock, response):
    """Ends a streaming call, also while another thread is blocked reading it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
    response.close()


class Watch:
    """An open watch: iterate for events; close() ends it (from any thread)."""

    def __init__(self, sock, response):
        self._sock, self._response = sock, response
        self._pending: List[Event] = []
        self.watch_id = None
        self.revision = 0  # the store's revision as of the latest answer

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        while not self._pending:
            try:
                line = self._response.readline()
            except (OSError, ValueError, http.client.HTTPException):
                line = b""
            if not line:
                raise StopIteration
            answer = json.loads(line)
            if "error" in answer:
                error = answer["error"]
                raise EtcdError(int(error.get("grpc_code", 2)), error.get("message", ""))
            result = answer.get("result", {})
            self.watch_id = result.get("watch_id", self.watch_id)
            self.revision = int(result.get("header", {}).get("revision", self.revision))
            if result.get("compact_revision") and result.get("canceled"):
                raise EtcdError(11, f"required revision has been compacted (at {result['compact_revision']})")
            for e in result.get("events", []):
                self._pending.append(Event(type=e.get("type", "PUT"), kv=_kv(e.get("kv")), prev_kv=_kv(e.get("prev_kv"))))
        return self._pending.pop(0)

    def close(self):
        _end_stream(self._sock, self._response)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Lease:
    def __init__(self, client: Client, lease_id: int, ttl: int):
        self.client, self.id, self.ttl = client, lease_id, ttl
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def keep_alive_once(self) -> int:
        """Restarts the lease's countdown; returns its TTL (0: it has expired)."""
        return self.client._keep_alive(self.id)

    def keep_alive_in_background(self):
        def renew():
            while not self._stop.wait(max(self.ttl / 3.0, 0.5)):
                try:
                    if self.client._keep_alive(self.id) <= 0:
                        return  # expired: nothing left to renew
                except EtcdError:
                    pass  # no endpoint for now: try again at the next beat
        self._thread = threading.Thread(target=renew, name=f"lease-{self.id:x}", daemon=True)
        self._thread.start()

    def time_to_live(self) -> dict:
        """{"ttl": seconds left (-1: expired), "granted_ttl": seconds, "keys": [the keys attached]}."""
        answer = self.client._post("/v3/lease/timetolive", {"ID": str(self.id), "keys": True})
        return {"ttl": int(answer.get("TTL", -1)), "granted_ttl": int(answer.get("grantedTTL", 0)),
                "keys": sorted(_dec(k) for k in answer.get("keys", []))}

    def revoke(self):
        """Ends the lease: every key attached to it is deleted."""
        self._stop.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            self.client._post("/v3/lease/revoke", {"ID": str(self.id)})
        except EtcdError as e:
            if "lease not found" not in e.message:
                raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.revoke()


class Lock:
    def __init__(self, client: Client, name: Bytes, ttl: int):
        self.client, self.name, self.ttl = client, name, ttl
        self.key: Optional[bytes] = None
        self._lease: Optional[Lease] = None

    def acquire(self):
        self._lease = self.client.lease(self.ttl, keep_alive=True)
        try:
            answer = self.client._post("/v3/lock/lock", {"name": _enc(self.name), "lease": str(self._lease.id)})
        except BaseException:
            self._lease.revoke()
            raise
        self.key = _dec(answer["key"])
        return self

    def release(self):
        try:
            self.client._post("/v3/lock/unlock", {"key": _enc(self.key)})
        finally:
            self._lease.revoke()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class Leadership:
    """Leadership of an election, held until resign() (or the process's end, once its lease expires)."""

    def __init__(self, client: Client, leader_key: dict, lease: Lease):
        self.client, self._leader_key, self.lease = client, leader_key, lease

    def proclaim(self, value: Bytes):
        self.client._post("/v3/election/proclaim", {"leader": self._leader_key, "value": _enc(value)})

    def resign(self):
        try:
            self.client._post("/v3/election/resign", {"leader": self._leader_key})
        finally:
            self.lease.revoke()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.resign()
