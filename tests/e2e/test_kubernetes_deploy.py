"""`zeppelin deploy/ps/logs/stop --target kubernetes` through the real binary,
against fake_kube_apiserver.py (a FAKE apiserver: no real one can run here)
over TLS with a CA, server and client certificates made by `openssl` for the
test. Kubeconfig files are written as kubectl users have them."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import unittest

from fake_kube_apiserver import FakeKubeApiServer
from harness import BIN, wait_for

SPEC = """\
name: shop
services:
  db:
    image: postgres:16.4
    ports: [{name: pg, port: 5432}]
    replicas: 2
    mode: stateful
    volumes: [{name: data, path: /var/lib/postgresql/data, size: 5Gi}]
  web:
    image: registry.example/shop/web:1.0
    ports: [{name: http, port: 8000}]
    replicas: 3
    env: {MODE: prod}
    depends_on: [db]
  cache:
    image: redis:7.2
    ports: [{name: redis, port: 6379}]
"""

SPEC_WITHOUT_CACHE = SPEC[:SPEC.index("  cache:")]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (CN=alice), all signed by the CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=zeppelin-test-ca", cwd=d)
    for name, cn, ext in (("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                          ("client", "alice", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    # A CA that signed nothing here: a client trusting it must refuse the server.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.crt", "-days",
            "2", "-subj", "/CN=other-ca", cwd=d)


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


class KubernetesDeployTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="zeppelin-kube-pki-")
        make_pki(cls.pki)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="zeppelin-kube-")
        p = lambda n: os.path.join(self.pki, n)  # noqa: E731
        self.fake = FakeKubeApiServer(p("server.crt"), p("server.key"), p("ca.crt"),
                                      tokens={"s3cret": "bob"}, namespaces=("default", "shop")).start()
        self.addCleanup(self.fake.stop)
        self.spec = os.path.join(self.dir, "zeppelin.yaml")
        with open(self.spec, "w") as f:
            f.write(SPEC)
        # Client certificate from files, CA from a file path relative to the kubeconfig.
        shutil.copy(p("ca.crt"), os.path.join(self.dir, "ca.crt"))
        self.kubeconfig = self.write_kubeconfig("config", f"""\
            apiVersion: v1
            kind: Config
            current-context: fake
            clusters:
            - name: fake
              cluster: {{server: "{self.fake.url}", certificate-authority: ca.crt}}
            users:
            - name: alice
              user: {{client-certificate: "{p('client.crt')}", client-key: "{p('client.key')}"}}
            contexts:
            - name: fake
              context: {{cluster: fake, user: alice, namespace: shop}}
            """)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_kubeconfig(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def zeppelin(self, *args, kubeconfig=None, check=True, timeout=60):
        env = dict(os.environ, KUBECONFIG=kubeconfig or self.kubeconfig, HOME=self.dir)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        r = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            self.fail(f"zeppelin {' '.join(args)} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def deploy(self, *extra, **kw):
        return self.zeppelin("deploy", "--target", "kubernetes", self.spec, *extra, **kw)

    # ---- apply, prune, wait ---------------------------------------------------

    def test_deploy_applies_every_rendered_object_and_waits_for_the_rollout(self):
        # No pod starts until deploy watches, so the rollout is seen through the watch.
        self.fake.paused = True
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.dir)
        proc = subprocess.Popen([BIN, "deploy", "--target", "kubernetes", self.spec], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: any("/deployments?" in path and "watch=1" in path for _, path, _ in self.fake.requests),
                     timeout=30, what="a watch of deployments")
        finally:
            self.fake.resume()
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        self.assertRegex(r.stdout, r"web: +waiting for the controller")
        self.assertRegex(r.stdout, r"web: +3/3 updated, 0/3 ready, 0/3 available")
        rendered = json.loads(self.zeppelin("render", "--target", "kubernetes", self.spec, "-n", "shop",
                                            "-o", "json").stdout)["items"]
        for obj in rendered:
            gv, plural = obj["apiVersion"], obj["kind"].lower() + "s"
            stored = self.fake.get(gv, plural, "shop", obj["metadata"]["name"])
            self.assertIsNotNone(stored, obj["metadata"]["name"])
            self.assertEqual(stored["spec"], obj["spec"]) if "spec" in obj else None
            self.assertEqual([m["manager"] for m in stored["metadata"]["managedFields"]], ["zeppelin"])
        patches = [(m, path) for m, path, _ in self.fake.requests if m == "PATCH"]
        self.assertEqual(len(patches), len(rendered))
        self.assertTrue(all("fieldManager=zeppelin" in path and "force" not in path for _, path in patches))
        self.assertIn("deployment.apps/shop-web created", r.stdout)
        self.assertRegex(r.stdout, r"\nweb: +3/3 ready\n")
        self.assertRegex(r.stdout, r"\ndb: +2/2 ready\n")
        self.assertIn("system shop is ready in namespace shop", r.stdout)
        # The rollout was followed through watches, not by polling.
        watches = [path for m, path, _ in self.fake.requests if m == "GET" and "watch=1" in path]
        self.assertTrue(any("/deployments?" in w and "resourceVersion=" in w for w in watches), watches)
        self.assertEqual(self.fake.get("apps/v1", "deployments", "shop", "shop-web")["status"]["availableReplicas"], 3)

    def test_redeploy_prunes_services_removed_from_the_spec_but_keeps_claims(self):
        self.deploy("--no-wait")
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
            "name": "shop-cache-old", "labels": {"app.kubernetes.io/instance": "shop",
                                                 "app.kubernetes.io/managed-by": "zeppelin"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
        self.fake.apply_as("zeppelin", "v1", "persistentvolumeclaims", "shop", pvc)
        other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "unrelated", "labels": {"app.kubernetes.io/instance": "other",
                                            "app.kubernetes.io/managed-by": "zeppelin"}}, "data": {"a": "b"}}
        self.fake.apply_as("kubectl", "v1", "configmaps", "shop", other)
        self.assertIn("shop-cache", self.fake.names("apps/v1", "deployments", "shop"))
        with open(self.spec, "w") as f:
            f.write(SPEC_WITHOUT_CACHE)
        r = self.deploy()
        self.assertIn("deployment.apps/shop-cache deleted (no longer in the spec)", r.stdout)
        self.assertNotIn("shop-cache", self.fake.names("apps/v1", "deployments", "shop"))
        self.assertNotIn("shop-cache", self.fake.names("v1", "services", "shop"))
        self.assertIn("shop-web", self.fake.names("apps/v1", "deployments", "shop"))
        self.assertIn("shop-cache-old", self.fake.names("v1", "persistentvolumeclaims", "shop"))
        self.assertIn("unrelated", self.fake.names("v1", "configmaps", "shop"))
        self.assertFalse(any(p["metadata"]["labels"].get("app.kubernetes.io/name") == "cache"
                             for p in map(lambda n: self.fake.get("v1", "pods", "shop", n),
                                          self.fake.names("v1", "pods", "shop"))))

    def test_watch_expired_with_410_gone_is_followed_by_a_new_list(self):
        self.fake.expire_next_watch = True
        r = self.deploy()
        self.assertIn("system shop is ready", r.stdout)
        lists = [path for m, path, _ in self.fake.requests
                 if m == "GET" and "watch=1" not in path and ("/deployments?" in path or "/statefulsets?" in path)]
        self.assertGreaterEqual(len(lists), 3, lists)  # one per kind, and one more after the 410

    def test_rollout_timeout_names_the_pods_and_their_reasons(self):
        self.fake.bad_images.add("registry.example/shop/web:1.0")
        r = self.deploy("--timeout", "4s", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("timed out after 4s waiting for the rollout of shop", r.stderr)
        self.assertIn("web: 3/3 updated, 0/3 ready", r.stderr)
        self.assertIn('ImagePullBackOff: Back-off pulling image "registry.example/shop/web:1.0"', r.stderr)
        self.assertRegex(r.stderr, r"pod shop-web-[0-9a-f]+-[0-9a-f]+ container web: ImagePullBackOff")
        self.assertNotIn("db:", r.stderr)  # ready services are not listed

    # ---- server-side apply conflicts and API errors -------------------------

    def test_conflict_with_another_field_manager_and_force(self):
        self.deploy("--no-wait")
        web = self.fake.get("apps/v1", "deployments", "shop", "shop-web")
        self.fake.apply_as("kubectl", "apps/v1", "deployments", "shop", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop-web"},
            "spec": {"replicas": 5}}, force=True)
        r = self.deploy("--no-wait", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("409 Conflict", r.stderr)
        self.assertIn('.spec.replicas: conflict with "kubectl" using apps/v1', r.stderr)
        self.assertIn("--force-conflicts", r.stderr)
        self.assertEqual(self.fake.get("apps/v1", "deployments", "shop", "shop-web")["spec"]["replicas"], 5)
        self.deploy("--no-wait", "--force-conflicts")
        self.assertEqual(self.fake.get("apps/v1", "deployments", "shop", "shop-web")["spec"]["replicas"],
                         web["spec"]["replicas"])
        self.assertTrue(any("force=true" in path for m, path, _ in self.fake.requests if m == "PATCH"))

    def test_invalid_object_quotes_the_causes(self):
        with open(self.spec, "w") as f:
            # Valid for zeppelin, not for Kubernetes: two mounts at one path.
            f.write(SPEC.replace("size: 5Gi}]", "size: 5Gi}, {name: more, path: /var/lib/postgresql/data}]"))
        r = self.deploy("--no-wait", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("422", r.stderr)
        self.assertIn('the cluster rejected statefulsets.apps "shop-db" in namespace shop as invalid: 422', r.stderr)
        self.assertIn('spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: '
                      '"/var/lib/postgresql/data": must be unique', r.stderr)

    def test_forbidden_names_user_verb_and_resource(self):
        self.fake.forbidden.add(("alice", "patch", "statefulsets"))
        r = self.deploy("--no-wait", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r'user "alice" is not allowed to apply \(patch\) statefulsets.apps "shop-[a-z-]+" '
                                   r'in namespace shop: 403 Forbidden')
        self.assertIn('User \\"alice\\" cannot patch resource \\"statefulsets\\"', json.dumps(r.stderr))

    def test_bad_or_no_credentials_is_401_naming_the_user(self):
        kubeconfig = self.write_kubeconfig("token", f"""\
            current-context: t
            clusters: [{{name: c, cluster: {{server: "{self.fake.url}", certificate-authority-data: {b64(os.path.join(self.pki, 'ca.crt'))}}}}}]
            users: [{{name: bob, user: {{token: wrong}}}}]
            contexts: [{{name: t, context: {{cluster: c, user: bob}}}}]
            """)
        r = self.deploy("--no-wait", "-n", "shop", kubeconfig=kubeconfig, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('rejected the credentials of user "bob"', r.stderr)
        self.assertIn("401 Unauthorized", r.stderr)
        anonymous = self.write_kubeconfig("anonymous", f"""\
            current-context: t
            clusters: [{{name: c, cluster: {{server: "{self.fake.url}", certificate-authority: "{os.path.join(self.pki, 'ca.crt')}"}}}}]
            contexts: [{{name: t, context: {{cluster: c}}}}]
            """)
        r = self.deploy("--no-wait", "-n", "shop", kubeconfig=anonymous, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("rejected the credentials of user (no user)", r.stderr)
        self.assertEqual(self.fake.names("apps/v1", "deployments", "shop"), [])

    def test_missing_namespace_says_how_to_create_it(self):
        r = self.deploy("--no-wait", "-n", "nowhere", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('namespace "nowhere" does not exist', r.stderr)

    # ---- kubeconfig resolution through the binary -----------------------------

    def test_merged_kubeconfigs_context_flag_token_file_and_ca_data(self):
        token_file = os.path.join(self.dir, "token")
        with open(token_file, "w") as f:
            f.write("s3cret\n")
        first = self.write_kubeconfig("first", f"""\
            current-context: broken
            contexts: [{{name: broken, context: {{cluster: nowhere, user: bob}}}},
                       {{name: bob-ctx, context: {{cluster: fake, user: bob, namespace: shop}}}}]
            users: [{{name: bob, user: {{tokenFile: token}}}}]
            """)
        second = self.write_kubeconfig("second", f"""\
            current-context: ignored-because-first-wins
            clusters: [{{name: fake, cluster: {{server: "{self.fake.url}", certificate-authority-data: {b64(os.path.join(self.pki, 'ca.crt'))}}}}},
                       {{name: nowhere, cluster: {{server: "https://127.0.0.1:1"}}}}]
            """)
        kubeconfig = f"{first}:{os.path.join(self.dir, 'missing')}:{second}"
        r = self.deploy("--no-wait", kubeconfig=kubeconfig, check=False)
        self.assertEqual(r.returncode, 1)  # current-context "broken" points at a closed port
        self.assertIn("cannot reach the Kubernetes API at https://127.0.0.1:1", r.stderr)
        self.deploy("--no-wait", "--context", "bob-ctx", kubeconfig=kubeconfig)
        self.assertEqual({u for m, _, u in self.fake.requests if m == "PATCH"}, {"bob"})

    def test_untrusted_server_certificate_is_refused_unless_insecure(self):
        for insecure, expect in (("false", 1), ("true", 0)):
            kubeconfig = self.write_kubeconfig("other-ca", f"""\
                current-context: x
                clusters: [{{name: c, cluster: {{server: "{self.fake.url}", certificate-authority: "{os.path.join(self.pki, 'other.crt')}", insecure-skip-tls-verify: {insecure}}}}}]
                users: [{{name: bob, user: {{token: s3cret}}}}]
                contexts: [{{name: x, context: {{cluster: c, user: bob, namespace: shop}}}}]
                """)
            r = self.deploy("--no-wait", kubeconfig=kubeconfig, check=False)
            self.assertEqual(r.returncode, expect, r.stderr)
            if expect:
                self.assertIn("TLS handshake with the Kubernetes API at " + self.fake.url + " failed", r.stderr)

    def test_no_kubeconfig_lists_the_paths_tried(self):
        missing = os.path.join(self.dir, "nope")
        r = self.deploy(kubeconfig=f"{missing}:{missing}2", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"no kubeconfig found: tried {missing}, {missing}2", r.stderr)

    # ---- ps, logs, stop ---------------------------------------------------------

    def test_ps_logs_and_stop(self):
        self.deploy()
        ps = self.zeppelin("ps", "--target", "kubernetes", "shop").stdout.splitlines()
        self.assertEqual(ps[0].split()[:5], ["SYSTEM", "SERVICE", "REPLICA", "STATE", "HEALTH"])
        rows = sorted(tuple(line.split()[:5]) for line in ps[1:])
        self.assertEqual(rows, sorted([("shop", "db", "0", "running", "healthy"), ("shop", "db", "1", "running", "healthy"),
                                       ("shop", "cache", "0", "running", "healthy")] +
                                      [("shop", "etcd", str(i), "running", "healthy") for i in range(3)] +
                                      [("shop", "web", str(i), "running", "healthy") for i in range(3)]))

        logs = self.zeppelin("logs", "--target", "kubernetes", "shop/db/1").stdout
        self.assertEqual(logs, "db/1         | db starting in shop-db-1\n")
        self.fake.append_log("shop", "shop-db-0", "ready to accept connections")
        logs = self.zeppelin("logs", "--target", "kubernetes", "shop/db").stdout.splitlines()
        self.assertEqual(logs, ["db/0         | db starting in shop-db-0", "db/0         | ready to accept connections",
                                "db/1         | db starting in shop-db-1"])

        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=self.dir)
        follow = subprocess.Popen([BIN, "logs", "--target", "kubernetes", "shop/cache", "-f"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertIn("cache starting in", follow.stdout.readline())
            pod = self.fake.names("v1", "pods", "shop")[0]
            cache_pod = [n for n in self.fake.names("v1", "pods", "shop") if n.startswith("shop-cache-")][0]
            self.assertTrue(pod)
            self.fake.append_log("shop", cache_pod, "a line written later")
            self.assertEqual(follow.stdout.readline(), "cache/0      | a line written later\n")

            stop = self.zeppelin("stop", "--target", "kubernetes", "shop")
            self.assertIn("stopped shop in namespace shop", stop.stdout)
            # The followed log ends when its pod is gone.
            self.assertEqual(follow.wait(timeout=30), 0)
        finally:
            if follow.poll() is None:
                follow.kill()
            follow.communicate()
        self.assertEqual(self.fake.names("v1", "pods", "shop"), [])
        self.assertEqual(self.fake.names("apps/v1", "deployments", "shop"), [])
        self.assertEqual(self.fake.names("apps/v1", "statefulsets", "shop"), [])
        self.assertEqual(self.fake.names("v1", "services", "shop"), [])
        self.assertEqual(self.fake.names("v1", "configmaps", "shop"), [])

    def test_stop_keeps_claims_unless_volumes(self):
        with open(self.spec, "w") as f:
            f.write(SPEC + "    volumes: [{name: shared, path: /shared, source: ./shared}]\n")
        os.makedirs(os.path.join(self.dir, "shared"))
        self.deploy("--no-wait")
        self.assertEqual(self.fake.names("v1", "persistentvolumeclaims", "shop"), ["shop-cache-shared"])
        self.zeppelin("stop", "--target", "kubernetes", "shop")
        self.assertEqual(self.fake.names("v1", "persistentvolumeclaims", "shop"), ["shop-cache-shared"])
        self.zeppelin("stop", "--target", "kubernetes", "shop", "--volumes")
        self.assertEqual(self.fake.names("v1", "persistentvolumeclaims", "shop"), [])


if __name__ == "__main__":
    unittest.main()
