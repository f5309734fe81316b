"""Service discovery through the coordination store: replicas get
ZEPPELIN_ETCD_ENDPOINTS, running replicas are announced under
/zeppelin/services/SYSTEM/SERVICE/ORDINAL and withdrawn when they stop, and
desired state written to the store with etcdctl is reconciled."""
import json
import os
import signal
import unittest

from harness import ETCDCTL, ZeppelinTestCase, wait_for

PREFIX = "/zeppelin/services/disc/web/"


class DiscoveryTest(ZeppelinTestCase):
    def announced(self):
        return {key[len(PREFIX):]: json.loads(value) for key, value in self.store_get(PREFIX).items()}

    def test_replicas_are_announced_withdrawn_and_announced_again(self):
        seen = os.path.join(self.dir, "seen")
        self.write_spec(f"""\
            name: disc
            services:
              web:
                replicas: 2
                ports: [{{name: http, port: 8080}}]
                command: 'printf %s "$ZEPPELIN_ETCD_ENDPOINTS" > {seen}.$ZEPPELIN_REPLICA; exec sleep 1000'
              watcher:
                depends_on: [web]
                env: {{ETCDCTL_API: "3"}}
                # A client of the discovery keys, as an application would be: it watches them from the start.
                command: ["{ETCDCTL}", "--endpoints=${{ZEPPELIN_ETCD_ENDPOINTS}}", "watch", "--prefix", "--rev=1", "{PREFIX}"]
            """)
        self.zeppelin("run", "-d")
        endpoints = self.etcd_endpoints()
        self.assertRegex(endpoints, r"^http://127\.0\.0\.1:\d+$")
        for i in range(2):
            path = f"{seen}.{i}"
            wait_for(lambda: os.path.exists(path) and open(path).read(), what=f"web/{i} to write its environment")
            self.assertEqual(open(path).read(), endpoints)

        rows = {r["replica"]: r for r in self.ps("disc") if r["service"] == "web"}
        announced = wait_for(lambda: (a := self.announced()) and len(a) == 2 and a, what="two announcements")
        for i in range(2):
            self.assertEqual(f'{announced[str(i)]["address"]}:8080', rows[i]["address"])
            self.assertEqual(announced[str(i)]["ports"], {"http": 8080})
            self.assertEqual(announced[str(i)]["replica"], i)
            self.assertEqual(announced[str(i)]["pid"], rows[i]["pid"])
        # The announcement is tied to the server's lease: it goes if the server goes.
        lease = json.loads(self.etcdctl("get", PREFIX + "0", "-w", "json").stdout)["kvs"][0]["lease"]
        self.assertNotEqual(lease, 0)

        # Killed from outside: withdrawn, then announced again once restarted.
        old = rows[1]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: (a := self.announced()).get("1", {}).get("pid") not in (None, old), what="web/1 announced again")
        self.assertEqual(self.announced()["1"]["pid"], self.replica("web", 1, "disc")["pid"])
        log = lambda: self.zeppelin("logs", "disc/watcher").stdout
        wait_for(lambda: log().count(PREFIX + "1") >= 3, what="the watcher to see put, delete, put of web/1")
        lines = [l.split("|", 1)[1].strip() for l in log().splitlines() if "|" in l and "[zeppelin]" not in l]
        ops = [lines[i - 1] for i, l in enumerate(lines) if l == PREFIX + "1"]
        self.assertEqual(ops[:3], ["PUT", "DELETE", "PUT"])

        # Scaled down: the announcement of the stopped replica goes.
        self.zeppelin("scale", "disc", "web=1")
        wait_for(lambda: list(self.announced()) == ["0"], what="web/1 withdrawn")

        # Stopped: nothing is announced.
        self.zeppelin("stop", "disc")
        wait_for(lambda: self.announced() == {}, what="every announcement withdrawn")

    def test_desired_state_written_with_etcdctl_is_reconciled(self):
        self.write_spec("""\
            name: edit
            services:
              s:
                command: ["sleep", "1000"]
            """)
        self.zeppelin("run", "-d")
        record = json.loads(self.store_get("/zeppelin/systems/edit")["/zeppelin/systems/edit"])
        self.assertEqual(record["scale"], {})
        record["scale"] = {"s": 3}
        self.etcdctl("put", "/zeppelin/systems/edit", json.dumps(record))
        wait_for(lambda: sum(r["state"] == "running" for r in self.ps("edit")) == 3, what="3 running replicas")
        self.assertEqual(self.zeppelin("ps", "-o", "json", "edit").returncode, 0)

        self.etcdctl("del", "/zeppelin/systems/edit")
        wait_for(lambda: self.ps() == [], what="the system removed")
        self.assertEqual(self.store_get("/zeppelin/replicas/edit/"), {})

        # A record that is not one is reported and changes nothing.
        self.etcdctl("put", "/zeppelin/systems/bad", "not json")
        self.zeppelin("run", "-d")
        self.assertEqual(len(self.ps("edit")), 1)
        wait_for(lambda: "ignoring /zeppelin/systems/bad: not a system record" in open(self.home + "/server.log").read(),
                 what="the ill-formed record reported")

    def test_a_bad_record_over_a_running_system_is_logged_and_leaves_it_running(self):
        self.write_spec("""\
            name: keep
            services:
              s:
                command: ["sleep", "1000"]
            """)
        self.zeppelin("run", "-d")
        pid = self.replica("s", 0, "keep")["pid"]
        good = json.loads(self.store_get("/zeppelin/systems/keep")["/zeppelin/systems/keep"])
        log = lambda: open(self.home + "/server.log").read()
        for bad, reported in (("not json", "not a system record"),
                              (json.dumps(dict(good, scale={"s": 1e300})), "must be a whole number"),
                              (json.dumps(dict(good, scale={"s": -1})), "must be a whole number"),
                              (json.dumps(dict(good, spec_file="relative.yaml")), "must be an absolute path")):
            self.etcdctl("put", "/zeppelin/systems/keep", bad)
            wait_for(lambda: log().count(reported) >= 1, what=f"{bad[:40]!r} reported")
            # What runs is left as it was: same replica, same process.
            self.assertEqual(self.replica("s", 0, "keep")["pid"], pid)
            self.assertEqual(self.replica("s", 0, "keep")["state"], "running")
        self.assertEqual(len(self.ps("keep")), 1)


class StateFileMigrationTest(ZeppelinTestCase):
    def test_a_state_file_of_an_earlier_version_is_imported_once(self):
        spec = self.write_spec("name: old\nservices:\n  s:\n    command: [\"sleep\", \"1000\"]\n")
        os.makedirs(self.home, mode=0o700)
        state = {"version": 1, "systems": [{
            "name": "old", "spec_file": spec, "spec_text": open(spec).read(), "caller_env": {"PATH": os.environ["PATH"]},
            "images": {}, "running": True, "scale": {"s": 2},
            "replicas": {"s/0": {"address": "127.250.0.7", "restarts": 5}}}]}
        with open(os.path.join(self.home, "state.json"), "w") as f:
            json.dump(state, f)
        self.zeppelin("server", "-d")
        rows = wait_for(lambda: (rows := self.ps("old")) and sum(r["state"] == "running" for r in rows) == 2 and rows,
                        what="the imported system running at its stored scale")
        self.assertEqual(rows[0]["address"], "127.250.0.7")
        self.assertEqual(rows[0]["restarts"], 5)
        self.assertFalse(os.path.exists(os.path.join(self.home, "state.json")))
        self.assertTrue(os.path.exists(os.path.join(self.home, "state.json.migrated")))
        record = json.loads(self.store_get("/zeppelin/systems/old")["/zeppelin/systems/old"])
        self.assertEqual(record["scale"], {"s": 2})
        self.assertIn("imported 1 system(s) from state.json", open(os.path.join(self.home, "server.log")).read())


if __name__ == "__main__":
    unittest.main()
