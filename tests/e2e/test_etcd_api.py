"""Differential test of zeppelin's etcd v3 API: the same etcdctl commands run
against a real etcd (Debian's etcd-server, started here) and against
`zeppelin server --etcd-listen`, and their outputs must match once the parts
that legitimately differ (cluster and member ids, lease ids, sizes) are
normalized. Both stores see the same commands in the same order, so their
revisions must match too."""
import base64
import http.client
import json
import os
import signal
import subprocess
import tempfile
import unittest

from harness import ETCD, ETCDCTL, Servers, free_port  # noqa: F401 (ETCD and free_port: for the tests that import them from here)


def ctl(endpoint, *args, input=None, timeout=30):
    return subprocess.run([ETCDCTL, f"--endpoints={endpoint}", "--command-timeout=10s", *args],
                          env=dict(os.environ, ETCDCTL_API="3"), input=input, capture_output=True,
                          text=True, timeout=timeout)


def b64(text):
    return base64.b64encode(text.encode()).decode()


def post(endpoint, path, body, headers=None):
    """POSTs to the JSON gateway; returns (HTTP status, parsed JSON or text)."""
    host, port = endpoint.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        conn.request("POST", path, body=data, headers=headers or {})
        r = conn.getresponse()
        text = r.read().decode()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text
    finally:
        conn.close()


class Stream:
    """A streaming gateway call (watch, keep-alive): one JSON object per line."""

    def __init__(self, endpoint, path, body):
        host, port = endpoint.split(":")
        # Generous: under ASan on a loaded 2-core machine a stream can stall for seconds.
        self.conn = http.client.HTTPConnection(host, int(port), timeout=90)
        self.conn.request("POST", path, body=json.dumps(body))
        self.response = self.conn.getresponse()

    def next(self):
        line = self.response.readline()
        return json.loads(line) if line else None

    def close(self):
        self.response.close()  # closes the connection: the server ends the call
        self.conn.close()


def error_line(stderr):
    """etcdctl's one-line verdict ("Error: ..."), without its retry logging."""
    lines = [l for l in stderr.splitlines() if l.startswith("Error:")]
    return lines[-1] if lines else stderr.strip()


class Normalizer:
    """Replaces what differs between two servers by placeholders."""

    def __init__(self):
        self.leases = {}

    def lease(self, lease_id):
        return self.leases.setdefault(lease_id, f"LEASE{len(self.leases) + 1}")

    def __call__(self, value, key=None):
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items() if k not in ("cluster_id", "member_id", "raft_term")}
        if isinstance(value, list):
            return [self(v, key) for v in value]
        if key in ("ID", "id", "lease") and isinstance(value, int) and value != 0:
            return self.lease(value)
        if key in ("ID", "id", "lease") and isinstance(value, str) and value.isdigit() and value != "0":
            return self.lease(int(value))  # the JSON gateway writes 64-bit integers as strings
        return value


class EtcdApiDifferentialTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="zeppelin-etcd-diff-")
        cls.servers = Servers(cls.dir)
        cls.etcd_endpoint, cls.zeppelin_endpoint = cls.servers.etcd_and_zeppelin("diff")

    @classmethod
    def tearDownClass(cls):
        cls.servers.stop()

    def setUp(self):
        self.normalize = {self.etcd_endpoint: Normalizer(), self.zeppelin_endpoint: Normalizer()}

    def both(self, *args, input=None, check=True):
        """Runs etcdctl against etcd then zeppelin; returns both results after
        asserting that exit codes and (normalized) outputs agree."""
        results = [ctl(e, *args, input=input) for e in (self.etcd_endpoint, self.zeppelin_endpoint)]
        etcd, zeppelin = results
        what = f"etcdctl {' '.join(args)}"
        self.assertEqual(etcd.returncode, zeppelin.returncode,
                         f"{what}: exit codes differ\netcd: {etcd.stderr}\nzeppelin: {zeppelin.stderr}")
        if check:
            self.assertEqual(etcd.returncode, 0, f"{what} failed on etcd: {etcd.stderr}")
        if etcd.returncode != 0:
            self.assertEqual(error_line(etcd.stderr), error_line(zeppelin.stderr), what)
        return etcd, zeppelin

    def both_json(self, *args, input=None):
        etcd, zeppelin = self.both(*args, "-w", "json", input=input)
        parsed = []
        for endpoint, r in ((self.etcd_endpoint, etcd), (self.zeppelin_endpoint, zeppelin)):
            parsed.append(self.normalize[endpoint](json.loads(r.stdout)))
        self.assertEqual(parsed[0], parsed[1], f"etcdctl {' '.join(args)} -w json")
        return parsed[0]

    def both_lease(self, ttl):
        """Grants a lease on each server; returns (etcd id, zeppelin id) in hex as etcdctl takes them."""
        granted = self.both_json("lease", "grant", str(ttl))
        self.assertEqual(granted["TTL"], ttl)
        ids = []
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            raw = [k for k, v in self.normalize[endpoint].leases.items() if v == granted["ID"]]
            ids.append(format(raw[0], "x"))
        return ids

    def per_endpoint(self, args_by_endpoint, drop=()):
        """Runs different arguments per server (lease ids differ); compares normalized JSON
        without the fields in `drop` (returned per server as `dropped`)."""
        parsed = []
        self.dropped = []
        for endpoint, args in args_by_endpoint:
            r = ctl(endpoint, *args, "-w", "json")
            self.assertEqual(r.returncode, 0, f"{endpoint}: etcdctl {' '.join(args)}: {r.stderr}")
            out = self.normalize[endpoint](json.loads(r.stdout))
            self.dropped.append({k: out.pop(k) for k in drop if k in out})
            parsed.append(out)
        self.assertEqual(parsed[0], parsed[1], f"etcdctl {' '.join(args_by_endpoint[0][1])}")
        return parsed[0]

    # The tests run in name order against both servers, so revisions stay in step.

    def test_01_put_get_delete(self):
        self.both("put", "kv/a", "1")
        put = self.both_json("put", "kv/a", "2", "--prev-kv")
        self.assertEqual(put["prev_kv"]["value"], "MQ==")  # base64 "1"
        got = self.both_json("get", "kv/a")
        self.assertEqual(got["kvs"][0]["version"], 2)
        old = self.both_json("get", "kv/a", f"--rev={got['kvs'][0]['mod_revision'] - 1}")
        self.assertEqual(old["kvs"][0]["value"], "MQ==")
        self.both_json("del", "kv/a", "--prev-kv")
        self.both_json("get", "kv/a")
        self.both_json("del", "kv/nothing")
        self.both("get", "kv/a", "--rev=100000", check=False)  # future revision: the same error

    def test_02_prefix_limit_keys_count_sort(self):
        for i in (3, 1, 2):
            self.both("put", f"pre/{i}", f"value-{i}")
        self.both("put", "prefix-not", "x")
        self.both_json("get", "pre/", "--prefix")
        limited = self.both_json("get", "pre/", "--prefix", "--limit=2")
        self.assertTrue(limited["more"])
        self.both_json("get", "pre/", "--prefix", "--keys-only")
        self.both_json("get", "pre/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND")
        self.both_json("get", "pre/2", "--from-key")
        self.both_json("get", "pre/1", "pre/3")
        deleted = self.both_json("del", "pre/", "--prefix")
        self.assertEqual(deleted["deleted"], 3)

    def test_03_txn(self):
        self.both("put", "txn/k", "v1")
        script = 'value("txn/k") = "v1"\n\nput txn/k v2\nget txn/k\n\nput txn/failed yes\n\n'
        first = self.both_json("txn", input=script)
        self.assertTrue(first["succeeded"])
        second = self.both_json("txn", input=script)
        self.assertFalse(second.get("succeeded", False))
        versions = 'ver("txn/k") > "1"\nmod("txn/k") > "0"\n\nget txn/failed\n\n\n'
        self.both_json("txn", input=versions)
        self.both("txn", input='\n\nput txn/dup a\nput txn/dup b\n\n\n', check=False)  # duplicate key

    def test_04_lease_grant_attach_revoke(self):
        etcd_id, zeppelin_id = self.both_lease(60)
        self.per_endpoint([(self.etcd_endpoint, ["put", "lease/k", "v", f"--lease={etcd_id}"]),
                           (self.zeppelin_endpoint, ["put", "lease/k", "v", f"--lease={zeppelin_id}"])])
        got = self.both_json("get", "lease/k")
        self.assertEqual(got["kvs"][0]["lease"], "LEASE1")
        ttl = self.per_endpoint([(self.etcd_endpoint, ["lease", "timetolive", etcd_id, "--keys"]),
                                 (self.zeppelin_endpoint, ["lease", "timetolive", zeppelin_id, "--keys"])],
                                drop=("ttl",))
        self.assertEqual(ttl["granted-ttl"], 60)
        for left in self.dropped:  # seconds left: counts down on each server separately
            self.assertTrue(0 < left["ttl"] <= 60, left)
        self.assertEqual(ttl["keys"], ["bGVhc2Uvaw=="])
        for endpoint, lease in ((self.etcd_endpoint, etcd_id), (self.zeppelin_endpoint, zeppelin_id)):
            r = ctl(endpoint, "lease", "revoke", lease)
            # etcdctl prints the id as 16 hex digits, zero-padded (a random id may be shorter).
            self.assertEqual(r.stdout, f"lease {int(lease, 16):016x} revoked\n")
        after = self.both_json("get", "lease/k")
        self.assertEqual(after.get("count", 0), 0)
        gone = self.per_endpoint([(self.etcd_endpoint, ["lease", "timetolive", etcd_id]),
                                  (self.zeppelin_endpoint, ["lease", "timetolive", zeppelin_id])])
        self.assertEqual(gone["ttl"], -1)
        self.both("lease", "revoke", "1234abcd", check=False)  # the same "lease not found" error
        self.both("put", "lease/x", "v", "--lease=1234abcd", check=False)

    def test_05_watch_from_a_revision(self):
        first = self.both_json("put", "watch/a", "1")
        start = first["header"]["revision"]
        self.both("put", "watch/b", "1")
        self.both("put", "outside", "1")
        self.both("del", "watch/a")
        self.both("put", "watch/b", "2")
        outputs = []
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            p = subprocess.Popen([ETCDCTL, f"--endpoints={endpoint}", "watch", "watch/", "--prefix",
                                  f"--rev={start}", "--prev-kv", "-w", "json"],
                                 env=dict(os.environ, ETCDCTL_API="3"), stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
            events = []
            try:
                while len(events) < 4:
                    line = p.stdout.readline()
                    if not line:
                        break
                    events += json.loads(line)["Events"]
            finally:
                p.kill()
                p.wait()
                p.stdout.close()
            outputs.append(self.normalize[endpoint](events))
        self.assertEqual(len(outputs[0]), 4)
        self.assertEqual(outputs[0], outputs[1])

    def test_06_compaction(self):
        self.both("put", "compact/k", "1")
        second = self.both_json("put", "compact/k", "2")
        revision = second["header"]["revision"]
        self.both("compaction", str(revision))
        failed = self.both("get", "compact/k", f"--rev={revision - 1}", check=False)
        self.assertIn("required revision has been compacted", error_line(failed[1].stderr))
        self.both("compaction", str(revision - 1), check=False)
        self.both_json("get", "compact/k", f"--rev={revision}")
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            r = subprocess.run([ETCDCTL, f"--endpoints={endpoint}", "watch", "compact/k", f"--rev={revision - 1}"],
                               env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True, timeout=30)
            self.assertIn("required revision has been compacted", r.stdout + r.stderr, endpoint)

    def test_07_endpoint_status_and_snapshot(self):
        statuses = []
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            r = ctl(endpoint, "endpoint", "status", "-w", "json")
            self.assertEqual(r.returncode, 0, r.stderr)
            statuses.append(json.loads(r.stdout)[0]["Status"])
        etcd, zeppelin = statuses
        self.assertEqual(etcd["header"]["revision"], zeppelin["header"]["revision"])
        self.assertEqual(sorted(etcd.keys()), sorted(zeppelin.keys()))
        self.assertEqual(zeppelin["leader"], zeppelin["header"]["member_id"])
        self.assertTrue(zeppelin["version"].startswith("3.4"))
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            path = os.path.join(self.dir, f"snapshot-{endpoint.split(':')[1]}.db")
            r = ctl(endpoint, "snapshot", "save", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"Snapshot saved at {path}", r.stdout)
            self.assertGreater(os.path.getsize(path), 32)
        with open(os.path.join(self.dir, f"snapshot-{self.zeppelin_endpoint.split(':')[1]}.db"), "rb") as f:
            self.assertEqual(f.read(16), b"SQLite format 3\0")

    def test_08_errors(self):
        self.both("get", "", check=False)  # empty key
        big = "x" * (1536 * 1024 + 100)
        self.both("put", "big", input=big, check=False)  # over the 1.5 MiB request limit
        self.both_json("get", "big")

    def test_09_etcdctl_lock_and_elect(self):
        # etcdctl builds these from leases, transactions and watches.
        locked = self.both("lock", "diff-lock", "echo", "holding the lock")
        self.assertEqual(locked[0].stdout, "holding the lock\n")
        self.assertEqual(locked[0].stdout, locked[1].stdout)

        def leader_value(endpoint):
            r = ctl(endpoint, "get", "diff-election/", "--prefix", "--print-value-only")
            return r.stdout if r.returncode == 0 else ""

        leaders = []
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            campaign = subprocess.Popen([ETCDCTL, f"--endpoints={endpoint}", "elect", "diff-election", "alice"],
                                        env=dict(os.environ, ETCDCTL_API="3"), stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
            try:
                # etcdctl prints the leader key once its campaign has won; only then does Ctrl-C resign.
                self.assertTrue(campaign.stdout.readline().startswith("diff-election/"), endpoint)
                leaders.append(leader_value(endpoint))
            finally:
                campaign.send_signal(signal.SIGINT)  # resigns, as on Ctrl-C
                campaign.wait(timeout=30)
                campaign.stdout.close()
        self.assertEqual(leaders, ["alice\n", "alice\n"])
        self.assertEqual([leader_value(e) for e in (self.etcd_endpoint, self.zeppelin_endpoint)], ["", ""])
    def both_out(self, *args, input=None, check=True):
        """Like both(), and the two outputs (plain, with no revisions in them) must be equal."""
        etcd, zeppelin = self.both(*args, input=input, check=check)
        self.assertEqual(etcd.stdout, zeppelin.stdout, f"etcdctl {' '.join(args)}")
        return etcd, zeppelin

    def test_10_auth(self):
        # Last: it leaves auth disabled again, but a failure in the middle may not.
        root, alice = "--user=root:rootpw", "--user=alice:alicepw"
        self.both("put", "app/k", "before")
        self.both_out("auth", "enable", check=False)  # root user does not exist
        self.both_out("user", "add", "root:rootpw")
        self.both_out("user", "add", "alice:alicepw")
        self.both_out("user", "add", "alice:again", check=False)  # user name already exists
        self.both_out("role", "add", "app")
        self.both_out("role", "grant-permission", "--prefix=true", "app", "readwrite", "app/")
        self.both_out("role", "grant-permission", "app", "read", "shared")
        self.both_out("role", "grant-permission", "app", "write", "a", "c")
        self.both_out("role", "grant-permission", "nope", "read", "x", check=False)  # role name not found
        self.both_out("user", "grant-role", "alice", "app")
        self.both_out("user", "grant-role", "nobody", "app", check=False)  # user name not found
        self.both_out("user", "grant-role", "alice", "nope", check=False)
        self.both_out("role", "get", "app")
        self.both_out("user", "get", "alice")
        self.both_out("user", "list")
        self.both_out("role", "list")
        self.both_out("role", "revoke-permission", "app", "a", "c")
        self.both_out("role", "revoke-permission", "app", "a", "c", check=False)  # not granted
        # "root user does not have root role": etcdctl then adds the role, grants it and retries.
        self.both_out("auth", "enable")
        try:
            self.both_out(alice, "put", "app/k", "by-alice")
            self.both_out(alice, "get", "app/", "--prefix")
            self.both_out(alice, "get", "shared")
            denied = self.both_out(alice, "put", "other", "v", check=False)
            self.assertEqual(error_line(denied[1].stderr), "Error: etcdserver: permission denied")
            self.both_out(alice, "put", "shared", "v", check=False)  # read only
            self.both_out(alice, "get", "", "--from-key", check=False)  # wider than app/
            self.both_out(alice, "lock", "app/lock", "echo", "held")
            self.both_out(alice, "lock", "other-lock", "echo", "held", check=False)
            watched = self.both_out(alice, "watch", "other", check=False)  # created and canceled at once
            self.assertIn("PermissionDenied desc = etcdserver: permission denied", watched[1].stderr)
            self.both_out(alice, "snapshot", "save", os.path.join(self.dir, "denied.db"), check=False)
            # The gateway takes the token of /v3/auth/authenticate in Authorization, as etcd's does.
            answers = []
            for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
                code, auth = post(endpoint, "/v3/auth/authenticate", {"name": "alice", "password": "alicepw"})
                self.assertEqual(code, 200, auth)
                token = {"Authorization": auth["token"]}
                answers.append([
                    post(endpoint, "/v3/kv/put", {"key": b64("app/gw"), "value": b64("v")}, token)[0],
                    post(endpoint, "/v3/kv/range", {"key": b64("app/gw")}, token)[1].get("count"),
                    post(endpoint, "/v3/kv/put", {"key": b64("other"), "value": b64("v")}, token),
                    post(endpoint, "/v3/kv/range", {"key": b64("app/gw")}),  # no token
                    post(endpoint, "/v3/kv/range", {"key": b64("app/gw")}, {"Authorization": "forged.1"}),
                ])
            self.assertEqual(answers[0], answers[1])
            self.assertEqual(answers[1][:2], [200, "1"])
            self.assertEqual(answers[1][2][0], 403)
            self.both_out(alice, "del", "app/", "--prefix")
            self.both_out(alice, "txn", input='\n\nput app/t 1\nput other 1\n\n\n', check=False)
            wrong = self.both_out("--user=alice:wrong", "get", "app/k", check=False)
            self.assertEqual(error_line(wrong[1].stderr),
                             "Error: etcdserver: authentication failed, invalid user ID or password")
            self.both_out("get", "app/k", check=False)  # no user at all
            self.both_out(alice, "user", "list", check=False)  # root only
            self.both_out(alice, "auth", "disable", check=False)
            self.both_out(root, "user", "list")
            self.both_out(root, "role", "list")
            self.both_out(root, "user", "get", "root")
            self.both_out(root, "get", "", "--from-key", "--keys-only", "--limit=3")
            self.both_out(root, "user", "delete", "root", check=False)  # invalid auth management
        finally:
            self.both_out(root, "auth", "disable")
        self.both_out("get", "other")
        self.both_out("user", "delete", "alice")
        self.both_out("user", "get", "alice", check=False)


    # The JSON gateway, on the same port as gRPC, compared with etcd's.

    def both_http(self, path, body, status=200, drop=()):
        """POSTs the same body to both; statuses and normalized answers must agree."""
        answers = []
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            code, answer = post(endpoint, path, body)
            self.assertEqual(code, status, f"{endpoint} {path} {body}: {answer}")
            answer = self.normalize[endpoint](answer)
            if isinstance(answer, dict):
                for k in drop:
                    answer.pop(k, None)
            answers.append(answer)
        self.assertEqual(answers[0], answers[1], f"POST {path} {body}")
        return answers[0]

    def test_10_gateway_kv_and_txn(self):
        self.both_http("/v3/kv/put", {"key": b64("gw/a"), "value": b64("1")})
        put = self.both_http("/v3/kv/put", {"key": b64("gw/a"), "value": b64("2"), "prev_kv": True})
        self.assertEqual(put["prev_kv"]["value"], b64("1"))
        self.assertIsInstance(put["header"]["revision"], str)  # int64 as a JSON string
        self.both_http("/v3/kv/put", {"key": b64("gw/b"), "value": b64("3")})
        got = self.both_http("/v3/kv/range", {"key": b64("gw/a")})
        self.assertEqual(got["kvs"][0]["version"], "2")
        prefix = self.both_http("/v3/kv/range", {"key": b64("gw/"), "range_end": b64("gw0")})
        self.assertEqual(prefix["count"], "2")
        self.both_http("/v3/kv/range", {"key": b64("gw/"), "range_end": b64("gw0"), "keys_only": True,
                                        "sort_order": "DESCEND", "limit": 1})
        self.both_http("/v3/kv/range", {"key": b64("gw/nothing")})  # no kvs, count omitted
        txn = {"compare": [{"key": b64("gw/a"), "result": "EQUAL", "target": "VALUE", "value": b64("2")}],
               "success": [{"request_put": {"key": b64("gw/a"), "value": b64("4")}},
                           {"request_range": {"key": b64("gw/a")}}],
               "failure": [{"request_range": {"key": b64("gw/b")}}]}
        self.assertTrue(self.both_http("/v3/kv/txn", txn)["succeeded"])
        self.assertNotIn("succeeded", self.both_http("/v3/kv/txn", txn))
        deleted = self.both_http("/v3/kv/deleterange", {"key": b64("gw/"), "range_end": b64("gw0"), "prev_kv": True})
        self.assertEqual(deleted["deleted"], "2")
        status = self.both_http("/v3/maintenance/status", {}, drop=("version", "dbSize", "dbSizeInUse", "leader",
                                                                     "raftIndex", "raftAppliedIndex", "raftTerm"))
        self.assertIn("header", status)

    def test_11_gateway_lease(self):
        self.both_http("/v3/kv/lease/timetolive", {"ID": "1234"})  # unknown lease: TTL -1
        granted = self.both_http("/v3/lease/grant", {"TTL": 60})
        self.assertEqual(granted["TTL"], "60")
        ids = [k for e in (self.etcd_endpoint, self.zeppelin_endpoint)
               for k, v in self.normalize[e].leases.items() if v == granted["ID"]]
        for endpoint, lease in zip((self.etcd_endpoint, self.zeppelin_endpoint), ids):
            code, _ = post(endpoint, "/v3/kv/put", {"key": b64("gw/leased"), "value": b64("v"), "lease": str(lease)})
            self.assertEqual(code, 200)
        answers = []
        for endpoint, lease in zip((self.etcd_endpoint, self.zeppelin_endpoint), ids):
            code, answer = post(endpoint, "/v3/lease/timetolive", {"ID": str(lease), "keys": True})
            self.assertEqual(code, 200, answer)
            self.assertTrue(0 < int(answer.pop("TTL")) <= 60, answer)
            answers.append(self.normalize[endpoint](answer))
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0]["keys"], [b64("gw/leased")])
        for endpoint, lease in zip((self.etcd_endpoint, self.zeppelin_endpoint), ids):
            code, stream_answer = post(endpoint, "/v3/lease/leases", {})
            self.assertIn({"ID": str(lease)}, stream_answer["leases"])
            keepalive = Stream(endpoint, "/v3/lease/keepalive", {"ID": str(lease)})
            renewed = keepalive.next()
            keepalive.close()
            self.assertEqual(renewed["result"]["TTL"], "60", endpoint)
        revoked = []
        for endpoint, lease in zip((self.etcd_endpoint, self.zeppelin_endpoint), ids):
            code, answer = post(endpoint, "/v3/lease/revoke", {"ID": str(lease)})
            self.assertEqual(code, 200, answer)
            revoked.append(self.normalize[endpoint](answer))
        self.assertEqual(revoked[0], revoked[1])
        self.assertNotIn("kvs", self.both_http("/v3/kv/range", {"key": b64("gw/leased")}))
        missing = self.both_http("/v3/kv/lease/revoke", {"ID": str(ids[0])}, status=404)
        self.assertEqual(missing["code"], 5)

    def test_12_gateway_watch_stream(self):
        streams = {e: Stream(e, "/v3/watch", {"create_request": {"key": b64("gw/w/"), "range_end": b64("gw/w0"),
                                                                   "prev_kv": True}})
                   for e in (self.etcd_endpoint, self.zeppelin_endpoint)}
        try:
            created = [self.normalize[e](s.next()) for e, s in streams.items()]
            self.assertEqual(created[0], created[1])
            self.assertTrue(created[0]["result"]["created"])
            self.both_http("/v3/kv/put", {"key": b64("gw/w/x"), "value": b64("1")})
            self.both_http("/v3/kv/put", {"key": b64("gw/w/x"), "value": b64("2")})
            self.both_http("/v3/kv/put", {"key": b64("gw/other"), "value": b64("3")})
            self.both_http("/v3/kv/deleterange", {"key": b64("gw/w/x")})
            seen = []
            for e, s in streams.items():
                events = []
                while len(events) < 3:
                    events += s.next()["result"]["events"]
                seen.append(self.normalize[e](events))
            self.assertEqual(seen[0], seen[1])
            self.assertEqual([ev.get("type", "PUT") for ev in seen[0]], ["PUT", "PUT", "DELETE"])
            self.assertEqual(seen[0][2]["prev_kv"]["value"], b64("2"))
        finally:
            for s in streams.values():
                s.close()  # cancels the watch
        # A watch from an old revision replays history the same way on both.
        start = int(created[0]["result"]["header"]["revision"]) + 1
        replays = []
        for e in (self.etcd_endpoint, self.zeppelin_endpoint):
            s = Stream(e, "/v3/watch", {"create_request": {"key": b64("gw/w/x"), "start_revision": str(start)}})
            try:
                first, second = s.next(), s.next()
            finally:
                s.close()
            replays.append(self.normalize[e]([first, second]))
        self.assertEqual(replays[0], replays[1])
        self.assertEqual(len(replays[0][1]["result"]["events"]), 3)

    def test_13_gateway_lock_and_election(self):
        keys = []
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            code, granted = post(endpoint, "/v3/lease/grant", {"TTL": 60})
            self.assertEqual(code, 200, granted)
            lease = granted["ID"]
            code, locked = post(endpoint, "/v3/lock/lock", {"name": b64("gw-lock"), "lease": lease})
            self.assertEqual(code, 200, locked)
            key = base64.b64decode(locked["key"]).decode()
            self.assertEqual(key, f"gw-lock/{int(lease):x}")
            code, unlocked = post(endpoint, "/v3/lock/unlock", {"key": locked["key"]})
            self.assertEqual(code, 200, unlocked)
            code, campaign = post(endpoint, "/v3/election/campaign", {"name": b64("gw-elect"), "lease": lease,
                                                                        "value": b64("alice")})
            self.assertEqual(code, 200, campaign)
            code, leader = post(endpoint, "/v3/election/leader", {"name": b64("gw-elect")})
            self.assertEqual(code, 200, leader)
            self.assertEqual(leader["kv"]["value"], b64("alice"))
            code, resigned = post(endpoint, "/v3/election/resign", {"leader": campaign["leader"]})
            self.assertEqual(code, 200, resigned)
            code, _ = post(endpoint, "/v3/lease/revoke", {"ID": lease})
            self.assertEqual(code, 200)
            keys.append(key)
        no_leader = self.both_http("/v3/election/leader", {"name": b64("gw-elect")}, status=500)
        self.assertEqual(no_leader["message"], "election: no leader")

    def test_14_gateway_errors(self):
        empty = self.both_http("/v3/kv/range", {"key": ""}, status=400)
        self.assertEqual(empty, {"error": "etcdserver: key is not provided",
                                 "message": "etcdserver: key is not provided", "code": 3})
        self.both_http("/v3/kv/put", {"key": b64("gw/x"), "value": "!!"}, status=400, drop=("error", "message"))
        bad = self.both_http("/v3/kv/range", "{bad", status=400, drop=("error", "message"))
        self.assertEqual(bad, {"code": 3})
        self.both_http("/v3/watch", "{bad", status=500, drop=("error", "message"))
        self.both_http("/v3/kv/range", {"key": b64("gw/x"), "revision": "100000"}, status=400)  # future revision
        self.both_http("/v3/kv/range", {"key": b64("gw/x"), "unknown_field": 1})  # ignored, as etcd does
        for endpoint in (self.etcd_endpoint, self.zeppelin_endpoint):
            code, text = post(endpoint, "/v3/kv/nope", {})
            self.assertEqual((code, text), (404, "Not Found\n"), endpoint)

    def test_15_request_limits(self):
        # Over etcd's 1.5 MiB request limit: refused by the server, over gRPC and the gateway alike.
        too_large = {"key": b64("gw/big"), "value": base64.b64encode(b"x" * (1536 * 1024 + 100)).decode()}
        refused = self.both_http("/v3/kv/put", too_large, status=400)
        self.assertEqual(refused["error"], "etcdserver: request is too large")
        # Over gRPC's 2 MiB message limit: ResourceExhausted, with the same message.
        huge = {"key": b64("gw/big"), "value": base64.b64encode(b"x" * (3 * 1024 * 1024)).decode()}
        exhausted = self.both_http("/v3/kv/put", huge, status=429)
        self.assertEqual(exhausted["code"], 8)
        self.assertNotIn("kvs", self.both_http("/v3/kv/range", {"key": b64("gw/big")}))
        self.both("put", "gw/big", input="x" * (3 * 1024 * 1024), check=False)  # gRPC: ResourceExhausted on both

if __name__ == "__main__":
    unittest.main()
