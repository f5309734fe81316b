"""Image services end to end, against a real Docker engine started for these tests."""
import os
import signal
import socket
import time

import json

from docker_engine import TEST_IMAGE, DockerEngine, UnixHTTPConnection
from harness import ZeppelinTestCase, http_get, wait_for

ENGINE = None


def setUpModule():
    global ENGINE
    ENGINE = DockerEngine().start()
    ENGINE.import_busybox()


def tearDownModule():
    if ENGINE:
        ENGINE.stop()


class ContainerTestCase(ZeppelinTestCase):
    def setUp(self):
        super().setUp()
        self.env["DOCKER_HOST"] = ENGINE.host

    def tearDown(self):
        super().tearDown()  # shuts the server down: it must take its containers with it
        self.assertEqual(self.containers(), [], "containers outlived their server")

    def containers(self, running_only=False):
        return [c for c in ENGINE.containers(label=f"io.zeppelin.home={self.home}")
                if not running_only or c["State"] == "running"]


WEB = """\
    name: @NAME@
    services:
      web:
        image: @IMAGE@
        command:
          - sh
          - -c
          - >-
            echo boot >> "$$ZEPPELIN_VOLUME_DATA/boots";
            echo "replica $$ZEPPELIN_REPLICA of $$ZEPPELIN_REPLICAS peers $$ZEPPELIN_PEERS";
            echo "page of $$ZEPPELIN_REPLICA" > /www/index.html;
            exec httpd -f -p ${ZEPPELIN_HOST}:${PORT} -h /www
        replicas: 3
        ports: [{name: http, port: 8080}]
        volumes: [{name: data, path: /data}]
        health:
          http: {port: http, path: /}
          interval: 1s
    """


def web_spec(name):
    return WEB.replace("@IMAGE@", TEST_IMAGE).replace("@NAME@", name)


class ImageServiceTest(ContainerTestCase):
    def test_replicas_come_up_healthy_and_a_killed_container_is_repaired(self):
        self.write_spec(web_spec("shopc"))
        out = self.zeppelin("run", "-d")
        self.assertIn("system shopc is running", out.stdout)
        rows = self.ps("shopc")
        self.assertEqual([(r["state"], r["health"]) for r in rows], [("running", "healthy")] * 3)
        running = self.containers(running_only=True)
        self.assertEqual(sorted(c["Names"][0] for c in running), ["/shopc-web-0", "/shopc-web-1", "/shopc-web-2"])
        labels = {c["Labels"]["io.zeppelin.replica"]: c["Labels"] for c in running}
        self.assertEqual(labels["1"]["io.zeppelin.system"], "shopc")
        self.assertEqual(labels["1"]["io.zeppelin.service"], "web")
        # Each replica answers on its own address, with the contract's identity.
        for r in rows:
            status, body = http_get(r["address"], "/")
            self.assertEqual((status, body.decode().strip()), (200, f"page of {r['replica']}"))
        self.assertIn("replica 1 of 3 peers " + ",".join(r["address"] for r in rows),
                      self.zeppelin("logs", "shopc/web/1").stdout)

        victim = next(c for c in running if c["Labels"]["io.zeppelin.replica"] == "1")
        ENGINE.request("POST", f"/containers/{victim['Id']}/kill?signal=SIGKILL")
        row = wait_for(lambda: (r := self.replica("web", 1, "shopc")) and r["restarts"] == 1
                       and r["health"] == "healthy" and r, what="killed replica repaired")
        self.assertEqual(row["last_exit"], "killed by signal 9 (Killed)")  # the engine's exit code 137
        self.assertEqual(len(self.containers(running_only=True)), 3)
        self.assertNotIn(victim["Id"], [c["Id"] for c in self.containers()], "the dead container is removed")
        # The per-replica volume is a host directory that outlives the container.
        with open(os.path.join(self.volume("shopc", "web", 1), "boots")) as f:
            self.assertEqual(f.read().split(), ["boot", "boot"])

    def test_stop_removes_every_container_and_down_volumes_removes_data(self):
        self.write_spec(web_spec("stopc"))
        self.zeppelin("run", "-d")
        self.assertEqual(len(self.containers()), 3)
        self.zeppelin("stop", "stopc")
        self.assertEqual(self.containers(), [])
        self.assertTrue(all(r["state"] == "stopped" for r in self.ps("stopc")))
        self.zeppelin("run", "-d")  # again, with the same volumes
        with open(os.path.join(self.volume("stopc", "web", 0), "boots")) as f:
            self.assertEqual(f.read().split(), ["boot", "boot"])
        self.zeppelin("down", "stopc", "--volumes")
        self.assertEqual(self.containers(), [])
        self.assertFalse(os.path.exists(self.volume("stopc", "web", 0)))

    def test_a_restarted_server_adopts_running_containers(self):
        self.write_spec(web_spec("adopt"))
        self.zeppelin("run", "-d")
        before = sorted(c["Id"] for c in self.containers(running_only=True))
        self.assertEqual(len(before), 3)
        server = self.server_pid()
        os.kill(server, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{server}/stat")
                 or open(f"/proc/{server}/stat").read().split(")")[-1].split()[0] == "Z", what="server gone")
        # The next server finds the containers still running.
        self.zeppelin("server", "-d")
        rows = wait_for(lambda: (rows := self.ps("adopt")) and all(r["health"] == "healthy" for r in rows) and rows,
                        what="adopted replicas healthy")
        self.assertEqual(len(rows), 3)
        self.assertEqual(sorted(c["Id"] for c in self.containers()), before, "adopted, not duplicated or replaced")
        self.assertIn("adopted from the previous server", self.zeppelin("logs", "adopt/web/0").stdout)
        # Adopted containers are supervised like any other.
        ENGINE.request("POST", f"/containers/{before[0]}/kill?signal=SIGKILL")
        wait_for(lambda: len(self.containers(running_only=True)) == 3 and before[0] not in
                 [c["Id"] for c in self.containers()], what="adopted container repaired")

    def test_build_service_is_built_from_a_dockerfile_then_run(self):
        os.makedirs(os.path.join(self.dir, "app"))
        with open(os.path.join(self.dir, "app", "Dockerfile"), "w") as f:
            f.write(f"FROM {TEST_IMAGE}\nARG GREETING\nCOPY message.txt /message.txt\n"
                    "RUN echo \"$GREETING from the build\" > /built.txt\n")
        with open(os.path.join(self.dir, "app", "message.txt"), "w") as f:
            f.write("copied from the context\n")
        self.write_spec("""\
            name: built
            services:
              api:
                build: {context: app, args: {GREETING: hello}}
                command: sh -c 'cat /built.txt /message.txt; exec sleep 1000'
            """)
        out = self.zeppelin("run", "-d")
        self.assertIn("built api (built-api:latest)", out.stderr)
        status, _ = ENGINE.json("GET", "/images/built-api:latest/json")
        self.assertEqual(status, 200)
        logs = wait_for(lambda: "copied" in (o := self.zeppelin("logs", "built/api").stdout) and o, what="output")
        self.assertIn("hello from the build", logs)
        # Changing the context and running again rebuilds and replaces the replica.
        first = [c["Id"] for c in self.containers(running_only=True)]
        with open(os.path.join(self.dir, "app", "message.txt"), "w") as f:
            f.write("second version\n")
        self.zeppelin("run", "-d")
        wait_for(lambda: "second version" in self.zeppelin("logs", "built/api").stdout, what="the rebuilt image running")
        self.assertNotEqual([c["Id"] for c in self.containers(running_only=True)], first)
        # Running again without a change keeps the container.
        second = [c["Id"] for c in self.containers(running_only=True)]
        self.zeppelin("run", "-d")
        self.assertEqual([c["Id"] for c in self.containers(running_only=True)], second)

    def test_exec_health_check_runs_inside_the_container_and_stop_sends_sigterm(self):
        self.write_spec(f"""\
            name: execc
            services:
              worker:
                image: {TEST_IMAGE}
                command: ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; sleep 1; touch /tmp/ready; while true; do sleep 0.1; done"]
                health:
                  exec: ["test", "-f", "/tmp/ready"]
                  interval: 1s
                stop_grace: 20s
            """)
        self.zeppelin("run", "-d")
        self.assertEqual(self.replica("worker", 0, "execc")["health"], "healthy")
        started = time.monotonic()
        self.zeppelin("stop", "execc")
        self.assertLess(time.monotonic() - started, 15, "SIGTERM reached the app: no wait for the 20s grace")
        self.assertIn("got TERM", self.zeppelin("logs", "execc/worker").stdout)
        self.assertEqual(self.replica("worker", 0, "execc")["last_exit"], "stopped as asked: exited with code 0")


    def test_memory_limit_is_enforced_and_an_oom_kill_is_shown(self):
        self.write_spec(f"""\
            name: oomc
            services:
              hog:
                image: {TEST_IMAGE}
                command: ["sh", "-c", "echo start; x=$$(head -c 200000000 /dev/zero | tr '\\\\0' a); echo survived"]
                resources: {{memory: 16Mi}}
                restart: never
            """)
        self.zeppelin("run", "-d", check=False)
        row = wait_for(lambda: (r := self.replica("hog", 0, "oomc")) and r["state"] == "failed" and r,
                       what="the hog to be killed")
        self.assertEqual(row["last_exit"], "killed by signal 9 (Killed), out of memory")
        logs = self.zeppelin("logs", "oomc/hog").stdout
        self.assertIn("start", logs)
        self.assertNotIn("survived", logs)


class ContainerEtcdTlsTest(ContainerTestCase):
    def test_a_container_gets_the_etcd_ca_mounted_readable_by_any_user(self):
        self.start_server("--etcd-tls")
        self.write_spec(f"""\
            name: tlsc
            services:
              app:
                image: {TEST_IMAGE}
                restart: never
                volumes: [{{name: data, path: /data}}]
                command: ["sh", "-c", "echo $$ZEPPELIN_ETCD_ENDPOINTS $$ZEPPELIN_ETCD_CACERT > /data/env; cat $$ZEPPELIN_ETCD_CACERT > /data/ca.pem; stat -c %a $$ZEPPELIN_ETCD_CACERT > /data/mode; (echo x > $$ZEPPELIN_ETCD_CACERT) 2> /data/write; touch /data/done; exec sleep 1000"]
            """)
        self.zeppelin("run", "-d")
        volume = self.volume("tlsc", "app", 0)
        wait_for(lambda: os.path.exists(os.path.join(volume, "done")), timeout=60, what="the container's report")

        def read(name):
            with open(os.path.join(volume, name)) as f:
                return f.read()
        endpoints, cacert = read("env").split()
        self.assertTrue(endpoints.startswith("https://127.0.0.1:"), endpoints)
        self.assertEqual(cacert, "/run/zeppelin/etcd-ca.pem")
        with open(os.path.join(self.home, "tls", "ca.pem")) as f:
            self.assertEqual(read("ca.pem"), f.read())
        self.assertEqual(read("mode"), "644\n")  # whatever user the image runs as
        self.assertIn("Read-only file system", read("write"))


class ContainerErrorTest(ContainerTestCase):
    def test_missing_image_fails_before_anything_starts(self):
        self.write_spec("""\
            name: nope
            services:
              ghost:
                image: zeppelin-test/does-not-exist:1
            """)
        r = self.zeppelin("run", "-d", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('service "ghost": image zeppelin-test/does-not-exist:1 is not present and could not be pulled',
                      r.stderr)
        self.assertEqual(self.containers(), [])

    def test_no_engine_names_the_sockets_tried(self):
        self.env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
        self.write_spec(f"""\
            name: noengine
            services:
              s:
                image: {TEST_IMAGE}
            """)
        r = self.zeppelin("run", "-d", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no container engine is reachable", r.stderr)
        self.assertIn("unix:///nonexistent/docker.sock", r.stderr)

    def test_failed_build_shows_its_last_lines(self):
        os.makedirs(os.path.join(self.dir, "bad"))
        with open(os.path.join(self.dir, "bad", "Dockerfile"), "w") as f:
            f.write(f"FROM {TEST_IMAGE}\nRUN echo about to fail && false\n")
        self.write_spec("""\
            name: badbuild
            services:
              b:
                build: bad
            """)
        r = self.zeppelin("run", "-d", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('service "b": build failed', r.stderr)
        self.assertIn("about to fail", r.stderr)
        self.assertEqual(self.zeppelin("ps", "-o", "json").stdout.strip(), "[]")

    def test_command_not_in_image_is_reported_with_exit_127(self):
        self.write_spec(f"""\
            name: badcmd
            services:
              s:
                image: {TEST_IMAGE}
                command: ["no-such-program"]
                restart: never
            """)
        # (Whether `run -d` sees the exit depends on it coming within the settle time: not asserted.)
        self.zeppelin("run", "-d", check=False)
        row = wait_for(lambda: (r := self.replica("s", 0, "badcmd")) and r["state"] == "failed" and r,
                       what="the replica to fail")
        self.assertEqual(row["last_exit"], "exited with code 127")
        self.assertIn("no-such-program", self.zeppelin("logs", "badcmd/s").stdout)

    def test_port_already_taken_is_said_clearly(self):
        with socket.socket() as holder:
            holder.bind(("0.0.0.0", 0))  # another program, on every address
            holder.listen()
            port = holder.getsockname()[1]
            self.write_spec(f"""\
                name: portc
                services:
                  s:
                    image: {TEST_IMAGE}
                    command: ["sleep", "1000"]
                    ports: [{{name: http, port: {port}}}]
                    restart: never
                """)
            r = self.zeppelin("run", "-d", check=False)
            self.assertEqual(r.returncode, 1)
            self.assertRegex(r.stderr, rf"port {port} \(http\) on 127\.[0-9.]+ is already taken by another program")
            self.assertEqual(self.containers(), [], "nothing was created")

    def test_missing_image_through_the_api_fails_the_replica_with_the_reason(self):
        # The API does not build or pull first (the CLI does): the server tries a
        # pull when creating the container, and says why it could not.
        spec = self.write_spec("""\
            name: apimiss
            services:
              ghost:
                image: zeppelin-test/not-here:2
                restart: never
            """)
        self.zeppelin("server", "-d")
        conn = UnixHTTPConnection(os.path.join(self.home, "zeppelin.sock"))
        with open(spec) as f:
            conn.request("POST", "/v1/systems", json.dumps({"spec_file": spec, "spec_text": f.read()}),
                         {"Content-Type": "application/json"})
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()
        row = wait_for(lambda: (r := self.replica("ghost", 0, "apimiss")) and r["state"] == "failed" and r,
                       what="the replica to fail")
        self.assertEqual(row["last_exit"], "exited with code 125")
        self.assertIn("image zeppelin-test/not-here:2 is not present and could not be pulled",
                      self.zeppelin("logs", "apimiss/ghost").stdout)
        self.zeppelin("stop", "apimiss", timeout=30)
