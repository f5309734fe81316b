"""The CLI around a running system: logs -f across restarts and scale-ups,
foreground run with Ctrl-C, scale, rolling restart, down, resource limits."""
import json
import os
import pty
import select
import signal
import subprocess
import time
import unittest

from harness import BIN, ZeppelinTestCase, free_port, processes_with_marker, wait_for

TICKER = """\
name: tick
services:
  t:
    command: 'echo "hello from $ZEPPELIN_REPLICA pid $$"; exec sleep 1000'
    replicas: 2
"""


class LineReader:
    """Reads lines from a child's stdout with a deadline."""

    def __init__(self, proc):
        self.proc = proc
        self.buffer = b""
        self.lines = []

    def wait_line(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if predicate(line):
                    self.lines.remove(line)
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line in time; got {self.lines}")
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"stream ended; got {self.lines}")
                self.buffer += chunk
                *complete, self.buffer = self.buffer.split(b"\n")
                self.lines.extend(l.decode() for l in complete)


class CliTest(ZeppelinTestCase):
    def spawn(self, *args):
        return subprocess.Popen([BIN, *args], env=self.env, cwd=self.dir, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def test_logs_follow_across_restarts_and_scale_up(self):
        self.write_spec(TICKER)
        self.zeppelin("run", "-d")
        follower = self.spawn("logs", "-f", "--tail", "1", "tick")
        try:
            reader = LineReader(follower)
            # History comes first, so once it arrives the follower is attached.
            reader.wait_line(lambda l: l.startswith("t/1"))
            victim = self.replica("t", 1)
            os.kill(victim["pid"], signal.SIGKILL)
            reader.wait_line(lambda l: l.startswith("t/1") and "killed by signal 9" in l)
            reader.wait_line(lambda l: l.startswith("t/1") and "hello from 1 pid" in l
                             and str(victim["pid"]) not in l)
            self.zeppelin("scale", "tick", "t=3")
            reader.wait_line(lambda l: l.startswith("t/2") and "hello from 2" in l)
        finally:
            follower.kill()
            follower.wait()
        # Without -f: each replica's history, then the command ends.
        history = self.zeppelin("logs", "tick/t/1").stdout.splitlines()
        self.assertEqual(sum("hello from 1" in l for l in history), 2, history)
        self.assertTrue(all(l.startswith("t/1") for l in history))
        tail = self.zeppelin("logs", "--tail", "1", "tick/t").stdout.splitlines()
        self.assertEqual(len(tail), 3)
        # A replica that does not exist is an error, not silence.
        missing = self.zeppelin("logs", "tick/t/9", check=False)
        self.assertEqual(missing.returncode, 1)
        self.assertIn('system "tick" has no replica t/9 (service t has 3 replicas)', missing.stderr)
        # A follower ends (exit 0) when the system is removed.
        follower = self.spawn("logs", "-f", "tick")
        try:
            LineReader(follower).wait_line(lambda l: l.startswith("t/0"))
            self.zeppelin("down", "tick")
            self.assertEqual(follower.wait(timeout=30), 0)
        finally:
            if follower.poll() is None:
                follower.kill()
            follower.communicate()

    def test_log_prefixes_are_coloured_on_a_terminal_unless_no_color(self):
        self.write_spec(TICKER)
        self.zeppelin("run", "-d")

        def logs_on_a_terminal(*flags, **extra):
            primary, secondary = pty.openpty()
            try:
                proc = subprocess.run([BIN, *flags, "logs", "tick/t/0"], env=dict(self.env, **extra), cwd=self.dir,
                                      stdout=secondary, stderr=subprocess.PIPE, timeout=60)
                self.assertEqual(proc.returncode, 0, proc.stderr)
                os.close(secondary)
                secondary = None
                out = b""
                while select.select([primary], [], [], 1)[0]:
                    try:
                        chunk = os.read(primary, 65536)
                    except OSError:  # the terminal's other side is closed: all read
                        break
                    if not chunk:
                        break
                    out += chunk
                return out
            finally:
                os.close(primary)
                if secondary is not None:
                    os.close(secondary)

        coloured = logs_on_a_terminal()
        self.assertIn(b"hello from 0", coloured)
        self.assertIn(b"\x1b[", coloured)
        plain = logs_on_a_terminal(NO_COLOR="1")
        self.assertIn(b"hello from 0", plain)
        self.assertNotIn(b"\x1b[", plain)
        self.assertNotIn(b"\x1b[", logs_on_a_terminal("--no-color"))
        self.assertNotIn("\x1b[", self.zeppelin("logs", "tick/t/0").stdout)  # piped: never

    def test_foreground_run_streams_logs_and_ctrl_c_stops_gracefully(self):
        self.write_spec(TICKER)
        proc = self.spawn("run")
        try:
            reader = LineReader(proc)
            reader.wait_line(lambda l: "hello from 0" in l and "t/0" in l)
            reader.wait_line(lambda l: "hello from 1" in l and "t/1" in l)
            proc.send_signal(signal.SIGINT)
            self.assertEqual(proc.wait(timeout=30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
        self.assertIn("stopped tick", proc.stderr.read().decode())
        self.assertEqual({r["state"] for r in self.ps("tick")}, {"stopped"})
        self.assertEqual(processes_with_marker(self.home), [])

    def test_rolling_restart_replaces_one_replica_at_a_time(self):
        self.write_spec("""\
            name: roll
            services:
              s:
                command: ["python3", "@APPS@/replica.py"]
                ports: [{name: http, port: 18090}]
                replicas: 3
                health:
                  tcp: {port: http}
                  interval: 100ms
                  start_period: 30s
            """)
        self.zeppelin("run", "-d")
        before = {r["replica"]: r["pid"] for r in self.ps("roll")}
        watcher = self.spawn("logs", "-f", "--tail", "1", "roll")
        try:
            reader = LineReader(watcher)
            reader.wait_line(lambda l: l.startswith("s/2"))  # the last history line: attached
            reader.lines.clear()
            r = self.zeppelin("restart", "roll/s")
            self.assertIn("restarted roll/s", r.stdout)
            events = []
            while len([e for e in events if "healthy" in e]) < 3:
                events.append(reader.wait_line(lambda l: "[zeppelin]" in l and ("rolling" in l or "healthy" in l)))
        finally:
            watcher.kill()
            watcher.wait()
        after = {r["replica"]: r["pid"] for r in self.ps("roll")}
        for ordinal in range(3):
            self.assertNotEqual(before[ordinal], after[ordinal])
        # Each replica went down only after the previous one was healthy again.
        order = [e.split()[0] + (" down" if "rolling" in e else " up") for e in events]
        self.assertEqual(order, ["s/0 down", "s/0 up", "s/1 down", "s/1 up", "s/2 down", "s/2 up"], events)
        self.assertEqual({r["restarts"] for r in self.ps("roll")}, {0}, "a rolling restart is not a crash")

    def test_running_again_with_a_changed_spec_replaces_only_changed_services(self):
        spec = """\
            name: change
            services:
              a:
                command: 'echo "a says $WORD"; exec sleep 1000'
                env: {WORD: one}
                replicas: 2
              b:
                command: ["sleep", "1000"]
            """
        self.write_spec(spec)
        self.zeppelin("run", "-d")
        before = {(r["service"], r["replica"]): r["pid"] for r in self.ps("change")}
        self.write_spec(spec.replace("WORD: one", "WORD: two"))
        self.zeppelin("run", "-d")
        wait_for(lambda: all(r["pid"] != before[("a", r["replica"])] and r["state"] == "running"
                             for r in self.ps("change") if r["service"] == "a"), what="a replaced")
        self.assertEqual(self.replica("b", 0, "change")["pid"], before[("b", 0)], "b did not change")
        self.assertIn("a says two", self.zeppelin("logs", "change/a/1").stdout)

    def test_scale_down_and_up_keeps_identity(self):
        self.write_spec(TICKER)
        self.zeppelin("run", "-d")
        addresses = {r["replica"]: r["address"] for r in self.ps("tick")}
        self.zeppelin("scale", "tick", "t=1")
        wait_for(lambda: len(self.ps("tick")) == 1, what="scaled down to 1")
        self.zeppelin("scale", "tick", "t=2")
        wait_for(lambda: [r["state"] for r in self.ps("tick")] == ["running", "running"], what="scaled up")
        self.assertEqual({r["replica"]: r["address"] for r in self.ps("tick")}, addresses)
        r = self.zeppelin("scale", "tick", "nope=2", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no service \"nope\"", r.stderr)

    def test_volumes_survive_stop_and_down_unless_asked(self):
        self.write_spec("""\
            name: vol
            services:
              s:
                command: 'echo $ZEPPELIN_REPLICA >> $ZEPPELIN_VOLUME_DATA/log; exec sleep 1000'
                volumes: [{name: data, path: /data}]
            """)
        self.zeppelin("run", "-d")
        data = os.path.join(self.volume("vol", "s", 0), "log")
        wait_for(lambda: os.path.exists(data), what="volume written")
        self.zeppelin("stop", "vol")
        self.zeppelin("run", "-d")
        self.assertEqual(open(data).read(), "0\n0\n")
        self.zeppelin("down", "vol")
        self.assertEqual(self.ps(), [])
        self.assertTrue(os.path.exists(data), "down without --volumes keeps data")
        self.zeppelin("run", "-d")
        self.zeppelin("down", "vol", "--volumes")
        self.assertFalse(os.path.exists(self.volume("vol", "s", 0)))

    def test_memory_limit_is_applied_through_cgroups(self):
        self.write_spec("""\
            name: limits
            services:
              s:
                command: ["sleep", "1000"]
                resources: {memory: 64Mi, cpu: 250m}
            """)
        self.zeppelin("run", "-d")
        import glob
        found_v1 = glob.glob("/sys/fs/cgroup/memory/zeppelin/*/limits.s.0")
        found_v2 = glob.glob("/sys/fs/cgroup/zeppelin/*/limits.s.0")
        self.assertLessEqual(len(found_v1 + found_v2), 1, "one group per replica and data directory")
        cg_v1 = found_v1[0] if found_v1 else "/nonexistent"
        cg_v2 = found_v2[0] if found_v2 else "/nonexistent"
        pid = self.replica("s", 0)["pid"]
        if os.path.isdir(cg_v1):
            self.assertEqual(open(f"{cg_v1}/memory.limit_in_bytes").read().strip(), str(64 * 1024 * 1024))
            self.assertIn(str(pid), open(f"{cg_v1}/cgroup.procs").read().split())
            cpu = cg_v1.replace("/memory/", "/cpu/")
            self.assertEqual(open(f"{cpu}/cpu.cfs_quota_us").read().strip(), "25000")
        elif os.path.isdir(cg_v2):
            self.assertEqual(open(f"{cg_v2}/memory.max").read().strip(), str(64 * 1024 * 1024))
        else:
            log = open(os.path.join(self.home, "server.log")).read()
            self.assertIn("limits will not be enforced", log)
            return
        self.zeppelin("stop", "limits")
        self.assertFalse(os.path.isdir(cg_v1) or os.path.isdir(cg_v2), "the group is removed with its replica")


class BadBytesTest(ZeppelinTestCase):
    def test_bytes_that_are_not_utf8_are_errors_that_start_nothing(self):
        spec = os.path.join(self.dir, "bad.yaml")
        with open(spec, "wb") as f:
            f.write(b'name: shop\nservices:\n  a:\n    command: ["echo", "\xff"]\n')
        for args in (["validate", spec], ["run", "-d", "-f", spec]):
            r = self.zeppelin(*args, check=False)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"{spec}:4:24: invalid UTF-8 (byte 0xFF)", r.stderr)
        good = self.write_spec('name: shop\nservices:\n  a:\n    command: ["sleep", "100"]\n')
        env = dict(self.env)
        env_bytes = {k.encode(): v.encode() for k, v in env.items()}
        env_bytes[b"BAD"] = b"\xff"
        r = subprocess.run([BIN, "run", "-d", "-f", good], env=env_bytes, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("environment variable BAD is not UTF-8", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.home, "zeppelin.sock")), "nothing was started")


class AddressPoolTest(ZeppelinTestCase):
    def test_a_system_larger_than_the_address_pool_is_refused_at_once(self):
        services = "".join(f"  s{i}:\n    command: [\"sleep\", \"1000\"]\n    replicas: 10000\n" for i in range(100))
        spec = self.write_spec("name: huge\nservices:\n" + services)
        r = self.zeppelin("run", "-d", "-f", spec, check=False, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        # Refused by the limit per system, which is far below the pool of 65,024 addresses.
        self.assertIn("the system wants 1000000 replicas in total, over the limit of 10000 per system", r.stderr)
        self.assertIn("zeppelin.yaml:", r.stderr)
        self.assertEqual(self.ps(), [])
        # The server is not busy with it: it answers at once.
        self.assertEqual(self.zeppelin("ps", timeout=10).returncode, 0)


class ApiTest(ZeppelinTestCase):
    """The HTTP/JSON API on its unix socket, including hostile input."""

    def request(self, raw):
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(os.path.join(self.home, "zeppelin.sock"))
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def test_socket_is_private_and_bad_requests_get_clear_errors(self):
        self.zeppelin("server", "-d")
        sock = os.path.join(self.home, "zeppelin.sock")
        self.assertEqual(os.stat(sock).st_mode & 0o777, 0o600)
        status, body = self.request(b"GET /v1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["name"], "zeppelin")
        status, body = self.request(b"POST /v1/systems HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{nope")
        self.assertEqual(status, 400)
        self.assertIn("JSON object", json.loads(body)["error"]["message"])
        spec = json.dumps({"spec_file": "/x/zeppelin.yaml", "spec_text": "name: x\nservices: {a: {command: {x: 1}}}\n"})
        status, body = self.request(f"POST /v1/systems HTTP/1.1\r\nHost: x\r\nContent-Length: {len(spec)}\r\n"
                                    f"Connection: close\r\n\r\n{spec}".encode())
        self.assertEqual(status, 400)
        self.assertIn("/x/zeppelin.yaml:2:", json.loads(body)["error"]["message"])
        status, _ = self.request(b"POST /v1/systems HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n")
        self.assertEqual(status, 413)
        status, _ = self.request(b"GET /v1/systems/../../etc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 404)
        status, _ = self.request(b"BLAH\r\n\r\n")
        self.assertEqual(status, 400)
        # Invalid UTF-8 quoted back in a message must not bring the server down.
        status, body = self.request(b"GET /v1/%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["error"]["code"], "not_found")
        scale = b'{"service": "s", "replicas": 4294967299}'
        status, body = self.request(b"POST /v1/systems/x/scale HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                    b"Content-Length: %d\r\n\r\n%s" % (len(scale), scale))
        self.assertEqual(status, 400)
        self.assertIn("0 to 10000", json.loads(body)["error"]["message"])
        # The server survived all of it.
        self.assertEqual(self.ps(), [])


class SpecDiscoveryAndListingTest(ZeppelinTestCase):
    """Commands that take a SYSTEM find it in ./zeppelin.yaml or -f FILE|DIR, as
    `run` does; `ls` lists systems; listings print -o table, json or yaml."""

    def test_commands_without_a_system_act_on_the_spec_here(self):
        self.write_spec(TICKER)
        self.zeppelin("run", "-d")
        self.zeppelin("scale", "t=3")
        wait_for(lambda: len(self.ps("tick")) == 3, what="3 replicas after `scale t=3`")
        self.assertIn("restarted tick", self.zeppelin("restart").stdout)
        self.assertIn("hello from", self.zeppelin("logs", "--tail", "1").stdout)
        self.assertIn("stopped tick", self.zeppelin("stop").stdout)
        self.assertIn("removed tick", self.zeppelin("down").stdout)
        # Down of what is not there: the end state is what was asked, as Compose's.
        self.assertIn("nothing to remove", self.zeppelin("down").stdout)
        self.assertEqual(json.loads(self.zeppelin("ls", "-o", "json").stdout), [])

    def test_a_directory_names_its_spec_and_nothing_here_is_a_usage_error(self):
        project = os.path.join(self.dir, "project")
        os.mkdir(project)
        with open(os.path.join(project, "zeppelin.yaml"), "w") as f:
            f.write(TICKER)
        self.assertIn("valid (system tick", self.zeppelin("validate", project).stdout)
        self.zeppelin("run", "-d", "-f", project)
        listed = json.loads(self.zeppelin("ls", "-o", "json").stdout)
        self.assertEqual([(s["name"], s["desired"], s["replicas"]) for s in listed], [("tick", "running", 2)])
        self.assertEqual(listed[0]["spec_file"], os.path.join(project, "zeppelin.yaml"))
        # No zeppelin.yaml in self.dir: a command without SYSTEM says what to do, exit 2.
        r = self.zeppelin("stop", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no SYSTEM given and no zeppelin.yaml here", r.stderr)
        self.assertIn("stopped tick", self.zeppelin("stop", "-f", project).stdout)

    def test_looking_never_starts_a_server(self):
        for args in (["ps"], ["ls", "-o", "json"], ["logs", "tick"]):
            r = self.zeppelin(*args)
            self.assertIn("no server is running", r.stderr, args)
            self.assertEqual(r.stdout, "[]\n" if "json" in args else "", args)
        self.assertIsNone(self.server_pid())

    def test_ls_prints_a_table_and_yaml(self):
        self.write_spec(TICKER)
        self.zeppelin("run", "-d")
        table = self.zeppelin("ls").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "DESIRED", "READY", "SPEC", "FILE"])
        self.assertEqual(table[1].split(), ["tick", "running", "2/2", os.path.join(self.dir, "zeppelin.yaml")])
        yaml = self.zeppelin("ps", "-o", "yaml").stdout
        self.assertTrue(yaml.startswith("---\n- "), yaml)
        self.assertEqual(yaml.count("  system: tick\n"), 2, yaml)
        r = self.zeppelin("ls", "-o", "xml", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("xml", r.stderr)


class HelpTest(ZeppelinTestCase):
    """Every command's --help, found by walking `--help` itself, ends with real
    examples; `help COMMAND` prints the same."""

    def subcommands(self, path):
        out = self.zeppelin(*path, "--help").stdout
        if "\nSubcommands:\n" not in out:
            return []
        section = out.split("\nSubcommands:\n", 1)[1].split("\n\n", 1)[0]
        return [line.split()[0].rstrip(",") for line in section.splitlines() if line.startswith("  ")]

    def test_every_help_ends_with_two_or_more_examples(self):
        pending, seen = [[]], []
        while pending:
            path = pending.pop()
            seen.append(" ".join(path))
            out = self.zeppelin(*path, "--help").stdout
            self.assertIn("\nExamples:\n", out, f"`zeppelin {' '.join(path)} --help` has no examples")
            examples = out.rsplit("\nExamples:\n", 1)[1].splitlines()
            commands = [e for e in examples if "zeppelin " in e]
            self.assertGreaterEqual(len(commands), 2, f"`zeppelin {' '.join(path)}`: {examples}")
            if path:
                self.assertTrue(any("zeppelin " + " ".join(path) in e for e in commands),
                                f"no example of `{' '.join(path)}` runs it: {examples}")
            pending.extend(path + [sub] for sub in self.subcommands(path))
        self.assertIn("store snapshot save", seen)
        self.assertIn("kv watch", seen)
        self.assertGreater(len(seen), 35)
        self.assertEqual(self.zeppelin("help", "store", "snapshot").stdout,
                         self.zeppelin("store", "snapshot", "--help").stdout)


class VersionTest(ZeppelinTestCase):
    def test_version_names_cli_and_server_and_never_starts_one(self):
        alone = json.loads(self.zeppelin("version", "-o", "json").stdout)
        self.assertIsNone(alone["server"])
        self.assertEqual(alone["client"]["api"], "v1")
        self.assertTrue(alone["client"]["version"] and alone["client"]["commit"] and alone["client"]["build_type"])
        self.assertIsNone(self.server_pid(), "`version` started a server")
        self.zeppelin("server", "-d")
        both = json.loads(self.zeppelin("version", "-o", "json").stdout)
        self.assertEqual({k: both["server"][k] for k in both["client"]}, both["client"])
        table = self.zeppelin("version").stdout.splitlines()
        self.assertTrue(table[0].startswith("client: zeppelin ") and table[1].startswith("server: zeppelin "), table)

    def test_a_server_of_another_api_version_is_named(self):
        # Stands in for a server of a future API version, which does not exist
        # to run: it answers GET /v1/version on the home's socket as one would.
        import http.server
        import socketserver
        import threading

        class Answer(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"name": "zeppelin", "api": "v2", "version": "9.0.0", "commit": "x",
                                   "build_type": "Release"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def address_string(self):
                return "unix"

            def log_message(self, *args):
                pass

        os.makedirs(self.home, mode=0o700, exist_ok=True)
        server = socketserver.UnixStreamServer(os.path.join(self.home, "zeppelin.sock"), Answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            r = self.zeppelin("version", check=False)
        finally:
            server.shutdown()
            server.server_close()
            os.unlink(os.path.join(self.home, "zeppelin.sock"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("server: zeppelin 9.0.0", r.stdout)
        self.assertIn("this CLI speaks API v1 and the server API v2", r.stderr)


class HintsTest(ZeppelinTestCase):
    """Where people get stuck, the failure says what to do."""

    def test_a_replica_that_binds_every_address_is_told_to_use_its_own(self):
        port = free_port()
        self.write_spec(f"""
            name: clash
            services:
              web:
                command: ["python3", "-c", "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen(); time.sleep(600)"]
                replicas: 2
            """)
        r = self.zeppelin("run", "-d", "--timeout", "30s", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("its address was in use: listen on $ZEPPELIN_HOST", r.stderr)

    def test_a_mistyped_program_is_named_with_the_nearest_one_on_path(self):
        self.write_spec("""
            name: typo
            services:
              web:
                command: ["pyhton3", "-m", "http.server"]
            """)
        r = self.zeppelin("run", "-d", "--timeout", "30s", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('"pyhton3" is not on the replica\'s PATH; did you mean "python3"?', r.stderr)
        self.assertNotIn("cannot start: cannot start", self.zeppelin("logs", "typo").stdout)


if __name__ == "__main__":
    unittest.main()
