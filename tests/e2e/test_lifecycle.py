"""`zeppelin run` end to end: replicas up and healthy, repaired, restarted when
unhealthy, ordered by depends_on, stopped without leftovers."""
import json
import os
import signal
import subprocess
import time
import unittest

from harness import BIN, ZeppelinTestCase, http_get, processes_with_marker, wait_for

SHOP = """\
name: shop
services:
  db:
    command: ["python3", "@APPS@/replica.py"]
    ports: [{name: http, port: 18080}]
    replicas: 3
    mode: stateful
    volumes: [{name: data, path: /data}]
    env: {GREETING: "hello from ${ZEPPELIN_SERVICE}"}
    health:
      http: {port: http, path: /healthz}
      interval: 200ms
      retries: 2
      start_period: 30s
  web:
    command: ["python3", "@APPS@/replica.py"]
    ports: [{name: http, port: 18081}]
    depends_on: [db]
    replicas: 2
"""


class LifecycleTest(ZeppelinTestCase):
    @staticmethod
    def try_get(address, path):
        try:
            return http_get(address, path)
        except OSError:
            return None

    def start_shop(self):
        self.write_spec(SHOP)
        r = self.zeppelin("run", "-d", "--timeout", "60s")
        self.assertIn("system shop is running", r.stdout)

    def test_replicas_come_up_healthy_with_the_identity_contract(self):
        self.start_shop()
        rows = self.ps("shop")
        self.assertEqual([(r["service"], r["replica"]) for r in rows],
                         [("db", 0), ("db", 1), ("db", 2), ("web", 0), ("web", 1)])
        for r in rows:
            self.assertEqual(r["state"], "running", r)
            self.assertGreater(r["pid"], 0)
        self.assertEqual({r["health"] for r in rows if r["service"] == "db"}, {"healthy"})
        addresses = [r["address"] for r in rows]
        self.assertEqual(len(set(addresses)), 5, "every replica has its own address")

        db = [r["address"] for r in rows if r["service"] == "db"]
        for ordinal, address in enumerate(db):
            status, body = http_get(address, "/env")
            env = json.loads(body)
            host, port = address.split(":")
            self.assertEqual(env["ZEPPELIN_SYSTEM"], "shop")
            self.assertEqual(env["ZEPPELIN_SERVICE"], "db")
            self.assertEqual(env["ZEPPELIN_REPLICA"], str(ordinal))
            self.assertEqual(env["ZEPPELIN_REPLICAS"], "3")
            self.assertEqual(env["ZEPPELIN_HOST"], host)
            self.assertEqual(env["PORT"], port)
            self.assertEqual(env["PORT_HTTP"], port)
            self.assertEqual(env["ZEPPELIN_PEERS"], ",".join(db))
            self.assertEqual(env["ZEPPELIN_VOLUME_DATA"], self.volume("shop", "db", ordinal))
            self.assertEqual(env["GREETING"], "hello from db")
        status, body = wait_for(lambda: self.try_get(rows[3]["address"], "/env"), what="web/0 listening")
        self.assertEqual(json.loads(body)["ZEPPELIN_SERVICE_DB"], ",".join(db))


        table = self.zeppelin("ps").stdout.splitlines()
        self.assertTrue(table[0].startswith("SYSTEM"))
        for column in ("SERVICE", "REPLICA", "STATE", "HEALTH", "PID", "RESTARTS", "ADDRESS"):
            self.assertIn(column, table[0])
        self.assertEqual(len(table), 6)

        # A replica added by scaling sees every peer, itself included.
        self.zeppelin("scale", "shop", "db=4")
        added = wait_for(lambda: (r := self.replica("db", 3)) and r["state"] == "running" and r, what="db/3 running")
        status, body = wait_for(lambda: self.try_get(added["address"], "/env"), what="db/3 listening")
        self.assertEqual(json.loads(body)["ZEPPELIN_PEERS"], ",".join(db + [added["address"]]))

    def test_kill_9_is_repaired_and_the_volume_survives(self):
        self.start_shop()
        victim = self.replica("db", 1)
        starts = os.path.join(self.volume("shop", "db", 1), "starts")
        with open(starts) as f:
            self.assertEqual(f.read().split(), [str(victim["pid"])])
        os.kill(victim["pid"], signal.SIGKILL)
        replaced = wait_for(lambda: (r := self.replica("db", 1)) and r["pid"] not in (0, victim["pid"])
                            and r["state"] == "running" and r, what="db/1 replaced")
        self.assertEqual(replaced["restarts"], 1)
        self.assertEqual(replaced["address"], victim["address"], "identity is stable across restarts")
        with open(starts) as f:
            self.assertEqual(f.read().split(), [str(victim["pid"]), str(replaced["pid"])])
        self.assertIn("killed by signal 9", replaced["last_exit"])

    def test_unhealthy_replica_is_restarted(self):
        self.start_shop()
        before = self.replica("db", 2)
        open(os.path.join(self.volume("shop", "db", 2), "sick"), "w").close()
        after = wait_for(lambda: (r := self.replica("db", 2)) and r["pid"] not in (0, before["pid"])
                         and r["health"] == "healthy" and r, what="db/2 restarted after failing health checks")
        self.assertGreaterEqual(after["restarts"], 1)
        logs = self.zeppelin("logs", "shop/db/2").stdout
        self.assertIn("unhealthy after 2 failed checks; restarting", logs)

    def test_depends_on_holds_web_back_until_db_is_healthy(self):
        self.write_spec("""\
            name: gated
            services:
              db:
                command: ["sleep", "1000"]
                volumes: [{name: data, path: /data}]
                health:
                  exec: ["sh", "-c", "test -f $ZEPPELIN_VOLUME_DATA/ready"]
                  interval: 100ms
                  start_period: 1m
              web:
                command: ["sleep", "1000"]
                depends_on: [db]
            """)
        r = self.zeppelin("run", "-d", "--timeout", "1500ms", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not ready after 1500ms", r.stderr)
        self.assertIn("db/0 is starting", r.stderr)
        web = self.replica("web", 0, "gated")
        self.assertEqual(web["pid"], 0, "web must not start before db is healthy")
        self.assertEqual(web["state"], "stopped")
        open(os.path.join(self.volume("gated", "db", 0), "ready"), "w").close()
        wait_for(lambda: self.replica("web", 0, "gated")["state"] == "running", what="web started")
        self.assertEqual(self.replica("db", 0, "gated")["health"], "healthy")

    def test_stop_leaves_no_process_behind(self):
        self.write_spec("""\
            name: forks
            services:
              s:
                command: 'sleep 1000 & sleep 1000 & wait'
                replicas: 3
              stubborn:
                command: 'trap "" TERM; sleep 1000 & wait; sleep 1000'
                stop_grace: 300ms
            """)
        self.zeppelin("run", "-d")
        wait_for(lambda: len(processes_with_marker(self.home)) >= 11, what="replicas and their children")
        r = self.zeppelin("stop", "forks")
        self.assertIn("stopped forks", r.stdout)
        self.assertEqual(processes_with_marker(self.home), [], "stop returned while processes remained")
        self.assertEqual({row["state"] for row in self.ps("forks")}, {"stopped"})
        # A stopped system starts again by name.
        self.zeppelin("run", "-d", "forks")
        self.assertEqual({row["state"] for row in self.ps("forks")}, {"running"})

    def test_restart_policy_never_and_crash_loop_visible(self):
        self.write_spec("""\
            name: crashy
            services:
              once:
                command: 'echo bye; exit 7'
                restart: never
              loop:
                command: 'exit 1'
            """)
        r = self.zeppelin("run", "-d", "--timeout", "20s", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"replica (once|loop)/0 failed")
        wait_for(lambda: self.replica("once", 0)["state"] == "failed", what="once failed")
        self.assertEqual(self.replica("once", 0)["last_exit"], "exited with code 7")
        # One snapshot of the row: it leaves backoff again when the delay is over.
        row = wait_for(lambda: (r := self.replica("loop", 0)) and r["state"] == "backoff" and r["restarts"] >= 2 and r,
                       what="crash loop in backoff")
        self.assertIn("restarting in", row["detail"])
        self.assertIn("bye", self.zeppelin("logs", "crashy/once").stdout)


class ServerRecoveryTest(ZeppelinTestCase):
    def test_server_killed_and_restarted_converges_without_extra_replicas(self):
        self.write_spec("""\
            name: durable
            services:
              s:
                command: ["sleep", "1000"]
                replicas: 3
            """)
        self.zeppelin("run", "-d")
        self.zeppelin("scale", "durable", "s=4")
        wait_for(lambda: len(processes_with_marker(self.home)) == 4, what="4 replicas")
        old_server = self.server_pid()
        self.assertIsNotNone(old_server)
        os.kill(old_server, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{old_server}/stat")
                 or open(f"/proc/{old_server}/stat").read().split(")")[-1].split()[0] == "Z", what="server gone")
        # A new server finds the system and its scale again.
        self.zeppelin("server", "-d")
        rows = wait_for(lambda: (rows := self.ps("durable")) and sum(r["state"] == "running" for r in rows) == 4
                        and rows, what="converged after server restart")
        self.assertNotEqual(self.server_pid(), old_server)
        self.assertEqual(len(rows), 4)
        # A just-spawned replica shows its marker only once it has exec'd: allow for that moment.
        pids = sorted(r["pid"] for r in rows)
        wait_for(lambda: sorted(processes_with_marker(self.home)) == pids, timeout=5,
                 what="exactly the listed replicas alive (never more than desired)")


    def test_server_killed_in_the_middle_of_starting_converges_to_exactly_desired(self):
        self.write_spec("""\
            name: burst
            services:
              s:
                command: ["sleep", "1000"]
                replicas: 300
            """)
        self.zeppelin("server", "-d")  # the server is up before the burst
        server = self.server_pid()
        run = subprocess.Popen([BIN, "run", "-d"], env=self.env, cwd=self.dir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        try:
            wait_for(lambda: len(processes_with_marker(self.home)) >= 20, interval=0.005, what="the burst began")
            os.kill(server, signal.SIGKILL)
            started_before_kill = len(processes_with_marker(self.home))
            self.assertNotEqual(run.wait(timeout=60), 0, "run -d cannot succeed without its server")
        finally:
            if run.poll() is None:
                run.kill()
            run.communicate()
        self.zeppelin("server", "-d")
        rows = wait_for(lambda: (rows := self.ps("burst")) and sum(r["state"] == "running" for r in rows) == 300
                        and rows, timeout=120, what="300 running after recovery")
        live = processes_with_marker(self.home)
        self.assertEqual(len(live), 300, f"{started_before_kill} were running at the kill; never more than desired")
        self.assertEqual(sorted(live), sorted(r["pid"] for r in rows))

    def test_a_system_whose_spec_no_longer_loads_is_kept_not_lost(self):
        os.mkdir(os.path.join(self.dir, "conf"))
        self.write_spec("""\
            name: keep
            services:
              s:
                command: ["sleep", "1000"]
                volumes: [{name: conf, path: /etc/conf, source: ./conf, read_only: true}]
            """)
        self.zeppelin("run", "-d", ".")
        self.zeppelin("shutdown")
        os.rmdir(os.path.join(self.dir, "conf"))
        self.assertEqual(self.ps(), [], "the new server cannot load it")
        other = self.write_spec("name: other\nservices:\n  s:\n    command: [\"sleep\", \"1000\"]\n", "other.yaml")
        self.zeppelin("run", "-d", "-f", other)  # the new server writes its state
        self.assertIn("/zeppelin/systems/keep", self.store_get("/zeppelin/systems/"))
        self.assertIn("cannot restore system keep", open(os.path.join(self.home, "server.log")).read())
        os.mkdir(os.path.join(self.dir, "conf"))
        self.zeppelin("run", "-d", "keep")
        self.assertEqual(self.replica("s", 0, "keep")["state"], "running")


class MalformedSpecTest(ZeppelinTestCase):
    def test_every_malformed_spec_is_located_and_starts_nothing(self):
        from harness import CORPUS
        checked = 0
        for name in sorted(os.listdir(CORPUS)):
            path = os.path.join(CORPUS, name)
            with open(path) as f:
                expect = f.readline().removeprefix("# expect: ").strip()
            for args in (["validate", path], ["run", "-d", "-f", path]):
                r = self.zeppelin(*args, check=False)
                self.assertEqual(r.returncode, 2, f"{args}: {r.stderr}")
                self.assertIn(f"{path}:{expect}", r.stderr)
            checked += 1
        self.assertGreaterEqual(checked, 20)
        self.assertFalse(os.path.exists(os.path.join(self.home, "zeppelin.sock")), "no server was started")
        self.assertFalse(os.path.exists(os.path.join(self.home, "state.json")))

    def test_unknown_variable_is_rejected_by_run(self):
        self.write_spec("""\
            name: typo
            services:
              s:
                command: ["echo", "${PROT}"]
            """)
        r = self.zeppelin("run", "-d", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown variable ${PROT}", r.stderr)
        self.assertEqual(self.ps(), [])

    def test_usage_errors_exit_2(self):
        self.assertEqual(self.zeppelin("frobnicate", check=False).returncode, 2)
        # A mistyped command is named, with the nearest one, and starts nothing.
        typo = self.zeppelin("sclae", "shop", "web=2", check=False)
        self.assertEqual(typo.returncode, 2)
        self.assertIn('unknown command "sclae"; did you mean "scale"?', typo.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "zeppelin.sock")))
        nested = self.zeppelin("store", "snapshot", "sav", "x", check=False)
        self.assertEqual(nested.returncode, 2)
        self.assertIn('unknown command "sav" for "zeppelin store snapshot"; did you mean "save"?', nested.stderr)
        self.assertNotIn("did you mean", self.zeppelin("up", check=False).stderr)
        # help and version as commands.
        self.assertIn("Change the number of replicas", self.zeppelin("help", "scale").stdout)
        self.assertEqual(self.zeppelin("help", "store", "snapshot").stdout,
                         self.zeppelin("store", "snapshot", "--help").stdout)
        self.assertIn('did you mean "version"?', self.zeppelin("vers", check=False).stderr)  # not its alias
        self.assertIn("Usage: zeppelin", self.zeppelin("help").stdout)
        self.assertEqual(self.zeppelin("help", "sclae", check=False).returncode, 2)
        self.assertTrue(self.zeppelin("version").stdout.startswith("client: " + self.zeppelin("--version").stdout.strip() + " "))
        self.assertEqual(self.zeppelin("shutdown").stdout, "no server running\n")
        self.assertEqual(self.zeppelin("server", "-d").stdout, f"server running for {self.home}\n")
        self.assertEqual(self.zeppelin("server", "-d", "--listen", "127.0.0.1:0", check=False).returncode, 2)
        self.assertEqual(self.zeppelin("shutdown").stdout, "server stopped\n")
        self.assertEqual(self.zeppelin("scale", "x", "web=many", check=False).returncode, 2)
        self.assertEqual(self.zeppelin("logs", "Bad_Name", check=False).returncode, 2)
        missing = self.zeppelin("run", "-d", "-f", "/nonexistent.yaml", check=False)
        self.assertEqual(missing.returncode, 1)
        self.assertIn("cannot open spec file", missing.stderr)


if __name__ == "__main__":
    unittest.main()
