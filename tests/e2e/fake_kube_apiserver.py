"""A FAKE Kubernetes API server, in-process, over TLS.

It is a fake because no real kube-apiserver can run on the test machines (no
kind, k3s or apiserver packages in Debian, no internet). It serves only the
endpoints `zeppelin deploy/ps/logs/stop --target kubernetes` use, and follows
the documented API behaviour for them:

- authentication: a bearer token from a table, or a client certificate signed
  by the test CA (user = its CN); 401 Status otherwise;
- authorization: 403 Status for (user, verb, resource) triples it is told to
  forbid, with the apiserver's message wording;
- server-side apply (PATCH, application/apply-patch+yaml, fieldManager):
  per-field ownership; a field owned by another manager with a different
  value is a 409 Conflict (details.causes: FieldManagerConflict) unless
  force=true, which takes the field over; fields a manager stops applying are
  removed unless another manager owns them; 201 on create, 200 otherwise;
  metadata.generation grows when .spec changes; no-op applies change nothing;
- validation: 422 Status (reason Invalid, details.causes) for a few of the
  apiserver's rules (names, label values, container images, ports, replicas);
- list with labelSelector (=, ==, !=, exists), metadata.resourceVersion;
- watch (?watch=1&resourceVersion=N&timeoutSeconds=S): chunked, one
  {"type": ADDED|MODIFIED|DELETED|ERROR, "object": ...} per line; an ERROR
  event with a 410 Expired Status when N is older than the kept history;
- delete with garbage collection of the pods a workload owns;
- pod logs (container, tailLines, follow=true streaming).

A built-in "controller" stands in for the kube-controller-manager and kubelet:
after an apply of a Deployment or StatefulSet it creates the pods and moves
status.observedGeneration/updatedReplicas/readyReplicas/availableReplicas
forward; pods of images listed in `bad_images` stay Pending in
ImagePullBackOff. ReplicaSets are not modelled (pods belong to the
Deployment directly).
"""
import copy
import datetime
import hashlib
import http.server
import itertools
import json
import queue
import re
import socketserver
import ssl
import threading
import time
import urllib.parse

KINDS = {
    ("v1", "services"): "Service",
    ("v1", "configmaps"): "ConfigMap",
    ("v1", "persistentvolumeclaims"): "PersistentVolumeClaim",
    ("v1", "pods"): "Pod",
    ("apps/v1", "deployments"): "Deployment",
    ("apps/v1", "statefulsets"): "StatefulSet",
    ("batch/v1", "jobs"): "Job",
}
PATH = re.compile(r"^/(?:api/(v1)|apis/(apps/v1|batch/v1))/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?(?:/(log))?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def status(code, reason, message, details=None):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": details or {}, "code": code}


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def leaves(obj, prefix=()):
    """Field paths of an object; lists are atomic, as with `x-kubernetes-list-type: atomic`."""
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from leaves(v, prefix + (k,))
    else:
        yield prefix, obj


def get_path(obj, path):
    for k in path:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def set_path(obj, path, value):
    for k in path[:-1]:
        obj = obj.setdefault(k, {})
    obj[path[-1]] = copy.deepcopy(value)


def del_path(obj, path):
    parents = []
    for k in path[:-1]:
        if not isinstance(obj, dict) or k not in obj:
            return
        parents.append((obj, k))
        obj = obj[k]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    for parent, k in reversed(parents):  # drop maps left empty
        if parent[k] == {}:
            del parent[k]


def selector_matches(selector, labels):
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term not in labels:
            return False
    return True


class FakeKubeApiServer:
    def __init__(self, certfile, keyfile, cafile, tokens=None, namespaces=("default",)):
        self.tokens = dict(tokens or {})  # bearer token -> user name
        self.namespaces = set(namespaces)
        self.forbidden = set()  # (user, verb, resource plural)
        self.bad_images = set()  # pods of these images stay in ImagePullBackOff
        self.expire_next_watch = False  # the next watch gets 410 Gone (history compacted)
        self.paused = False  # while set, the kubelet stand-in starts no container
        self.requests = []  # (method, path, user), for assertions
        self.cond = threading.Condition()
        self.rv = 100
        self.objects = {}  # (gv, plural, ns, name) -> object
        self.owners = {}  # (gv, plural, ns, name) -> {path: set(manager)}
        self.events = []  # (rv, gv, plural, ns, type, object)
        self.compacted_rv = 0  # watches from before this get 410 Gone
        self.logs = {}  # (ns, pod) -> [line]
        self.uids = itertools.count(1)
        self.work = queue.Queue()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certfile, keyfile)
        tls.load_verify_locations(cafile)
        tls.verify_mode = ssl.CERT_OPTIONAL
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self._threads = [threading.Thread(target=self.httpd.serve_forever, daemon=True),
                         threading.Thread(target=self._controller, daemon=True)]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.work.put(None)

    # ---- state (callers hold self.cond) -----------------------------------

    def _record(self, gv, plural, ns, type_, obj):
        self.rv += 1
        if type_ != "DELETED":
            obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, gv, plural, ns, type_, copy.deepcopy(obj)))
        self.cond.notify_all()

    def _put(self, gv, plural, ns, obj):
        key = (gv, plural, ns, obj["metadata"]["name"])
        created = key not in self.objects
        self.objects[key] = obj
        self._record(gv, plural, ns, "ADDED" if created else "MODIFIED", obj)

    def _delete(self, key):
        obj = self.objects.pop(key, None)
        self.owners.pop(key, None)
        if obj is None:
            return None
        obj["metadata"]["deletionTimestamp"] = now()
        self._record(key[0], key[1], key[2], "DELETED", obj)
        if key[1] == "pods":
            self.cond.notify_all()  # ends followed logs
        else:  # the garbage collector: pods owned by this object go too
            uid = obj["metadata"].get("uid")
            for pod_key in [k for k, o in self.objects.items() if k[1] == "pods" and k[2] == key[2] and any(
                    r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))]:
                self._delete(pod_key)
        return obj

    def get(self, gv, plural, ns, name):
        with self.cond:
            o = self.objects.get((gv, plural, ns, name))
            return copy.deepcopy(o) if o else None

    def names(self, gv, plural, ns):
        with self.cond:
            return sorted(k[3] for k in self.objects if k[:3] == (gv, plural, ns))

    def resume(self):
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    def compact(self):
        """Forgets the event history, as etcd compaction does: older watches get 410 Gone."""
        with self.cond:
            self.events.clear()
            self.compacted_rv = self.rv

    def append_log(self, ns, pod, line):
        with self.cond:
            self.logs.setdefault((ns, pod), []).append(line + "\n")
            self.cond.notify_all()

    def apply_as(self, manager, gv, plural, ns, obj, force=False):
        """Server-side apply as another field manager (what `kubectl apply --server-side` would do)."""
        with self.cond:
            return self._apply(manager, gv, plural, ns, obj["metadata"]["name"], copy.deepcopy(obj), force)

    # ---- the API -------------------------------------------------------------

    def _validate(self, kind, gv, obj):
        causes = []

        def invalid(field, value, why):
            causes.append({"reason": "FieldValueInvalid", "message": f"Invalid value: {json.dumps(value)}: {why}",
                           "field": field})

        name = obj.get("metadata", {}).get("name", "")
        if not DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
            invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric character")
        for k, v in (obj.get("metadata", {}).get("labels") or {}).items():
            if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
                invalid(f"metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric "
                        "characters, '-', '_' or '.', and must start and end with an alphanumeric character")
        spec = obj.get("spec") or {}
        if kind in ("Deployment", "StatefulSet") and spec.get("replicas", 1) < 0:
            invalid("spec.replicas", spec["replicas"], "must be greater than or equal to 0")
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        for group in ("initContainers", "containers"):
            for i, c in enumerate(pod_spec.get(group) or []):
                field = f"spec.template.spec.{group}[{i}]"
                image = c.get("image", "")
                if not image:
                    causes.append({"reason": "FieldValueRequired", "message": "Required value", "field": field + ".image"})
                elif image != image.strip():
                    invalid(field + ".image", image, "must not have leading or trailing whitespace")
                seen = set()
                for j, mount in enumerate(c.get("volumeMounts") or []):
                    if mount.get("mountPath") in seen:
                        invalid(f"{field}.volumeMounts[{j}].mountPath", mount["mountPath"], "must be unique")
                    seen.add(mount.get("mountPath"))
                for j, p in enumerate(c.get("ports") or []):
                    if not 1 <= p.get("containerPort", 0) <= 65535:
                        invalid(f"{field}.ports[{j}].containerPort", p.get("containerPort"),
                                "must be between 1 and 65535, inclusive")
        if not causes:
            return None
        group = gv.split("/")[0] if "/" in gv else ""
        qualified = kind + ("." + group if group else "")
        message = f'{qualified} "{name}" is invalid: ' + ", ".join(f'{c["field"]}: {c["message"]}' for c in causes)
        return status(422, "Invalid", message, {"name": name, "group": group, "kind": kind, "causes": causes})

    def _apply(self, manager, gv, plural, ns, name, body, force):
        kind = KINDS[(gv, plural)]
        if body.get("kind") != kind or body.get("apiVersion") != gv or body.get("metadata", {}).get("name") != name:
            return 400, status(400, "BadRequest", f"the object in the body is not {gv} {kind} {name!r}")
        invalid = self._validate(kind, gv, body)
        if invalid:
            return 422, invalid
        body["metadata"].setdefault("namespace", ns)
        key = (gv, plural, ns, name)
        existing = self.objects.get(key)
        owners = self.owners.setdefault(key, {})
        applied = {p: v for p, v in leaves(body) if p[:1] not in (("status",),) and p not in (
            ("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace"))}
        conflicts = []
        for path, value in applied.items():
            others = owners.get(path, set()) - {manager}
            if others and existing is not None and get_path(existing, path) != value:
                conflicts.extend((path, other) for other in sorted(others))
        if conflicts and not force:
            causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {gv}',
                       "field": "." + ".".join(p)} for p, m in conflicts]
            message = f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: " + "; ".join(
                f'conflict with "{m}" using {gv}: .{".".join(p)}' for p, m in conflicts)
            return 409, status(409, "Conflict", message, {"name": name, "group": gv.split("/")[0] if "/" in gv else "",
                                                          "kind": plural, "causes": causes})
        obj = copy.deepcopy(existing) if existing else {"apiVersion": gv, "kind": kind, "metadata": {
            "name": name, "namespace": ns, "uid": f"uid-{next(self.uids)}", "creationTimestamp": now(),
            "generation": 1}}
        # Fields this manager applied before and no longer does go, unless someone else owns them.
        for path, managers in list(owners.items()):
            if manager in managers and path not in applied:
                managers.discard(manager)
                if not managers:
                    del owners[path]
                    del_path(obj, path)
        for path, _ in conflicts:  # force: the conflicting fields change hands
            owners[path] = set()
        for path, value in applied.items():
            owners.setdefault(path, set()).add(manager)
            set_path(obj, path, value)
        obj["metadata"]["managedFields"] = [{"manager": m, "operation": "Apply", "apiVersion": gv} for m in sorted(
            {m for ms in owners.values() for m in ms})]
        if existing is not None and obj == existing:
            return 200, copy.deepcopy(obj)  # a no-op apply writes nothing
        if existing is not None and obj.get("spec") != existing.get("spec"):
            obj["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
        self._put(gv, plural, ns, obj)
        if plural in ("deployments", "statefulsets"):
            self.work.put(key)
        return (201 if existing is None else 200), copy.deepcopy(obj)

    # ---- the controller and kubelet stand-in -----------------------------

    def _controller(self):
        while True:
            key = self.work.get()
            if key is None:
                return
            with self.cond:
                self._roll_out(key)

    def _roll_out(self, key):
        gv, plural, ns, name = key
        workload = self.objects.get(key)
        if workload is None:
            return
        spec = workload["spec"]
        template = spec["template"]
        desired = spec.get("replicas", 1)
        revision = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        uid = workload["metadata"]["uid"]
        owned = {k: o for k, o in self.objects.items() if k[1] == "pods" and k[2] == ns and any(
            r.get("uid") == uid for r in o["metadata"].get("ownerReferences", []))}
        stateful = plural == "statefulsets"
        for k, pod in owned.items():  # pods of an older template go (a rolling update, simplified)
            if pod["metadata"]["labels"].get("zeppelin-fake/revision") != revision:
                self._delete(k)
        if stateful:
            names = [f"{name}-{i}" for i in range(desired)]
        else:
            names = [f"{name}-{revision[:8]}-{hashlib.sha256(f'{name}{revision}{i}'.encode()).hexdigest()[:5]}"
                     for i in range(desired)]
        for k in [k for k in self.objects if k[1] == "pods" and k in owned and k[3] not in names]:
            self._delete(k)  # scaled down
        bad = any(c.get("image") in self.bad_images for c in template["spec"].get("containers", []))
        pods = []
        for i, pod_name in enumerate(names):
            pod_key = ("v1", "pods", ns, pod_name)
            if pod_key in self.objects:
                pods.append(pod_key)
                continue
            labels = dict(template["metadata"].get("labels", {}), **{"zeppelin-fake/revision": revision})
            if stateful:
                labels["apps.kubernetes.io/pod-index"] = str(i)
                labels["statefulset.kubernetes.io/pod-name"] = pod_name
            containers = template["spec"].get("containers", [])
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": pod_name, "namespace": ns, "uid": f"uid-{next(self.uids)}", "labels": labels,
                "creationTimestamp": now(), "generation": 1,
                "ownerReferences": [{"apiVersion": gv, "kind": workload["kind"], "name": name, "uid": uid,
                                     "controller": True}]},
                "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
                    "containerStatuses": [{"name": c["name"], "image": c.get("image"), "ready": False,
                                           "restartCount": 0, "state": {"waiting": (
                                               {"reason": "ImagePullBackOff",
                                                "message": f'Back-off pulling image "{c.get("image")}"'} if bad else
                                               {"reason": "ContainerCreating"})}} for c in containers]}}
            self._put("v1", "pods", ns, pod)
            self.logs[(ns, pod_name)] = [f"{c['name']} starting in {pod_name}\n" for c in containers[:1]]
            pods.append(pod_key)
        status_ = {"observedGeneration": workload["metadata"]["generation"], "replicas": len(pods),
                   "updatedReplicas": len(pods), "readyReplicas": 0, "availableReplicas": 0}
        if stateful:
            status_.update(currentRevision=f"{name}-{revision}", updateRevision=f"{name}-{revision}")
        ready = 0
        for pod_key in pods:
            pod = self.objects[pod_key]
            if pod["status"]["phase"] == "Running":
                ready += 1
        status_["readyReplicas"] = status_["availableReplicas"] = ready
        workload["status"] = status_
        self._put(gv, plural, ns, workload)
        if bad:
            return
        for pod_key in pods:  # the kubelet starts the containers one pod at a time
            pod = self.objects[pod_key]
            if pod["status"]["phase"] == "Running":
                continue
            self.cond.wait(0.01)  # lets watchers see intermediate states; not needed for correctness
            self.cond.wait_for(lambda: not self.paused)
            if self.objects.get(key) is not workload or pod_key not in self.objects:
                return  # changed meanwhile; a queued roll-out follows
            pod["status"].update(phase="Running", startTime=now(), podIP=f"10.0.0.{int(pod['metadata']['uid'][4:]) % 250 + 1}")
            pod["status"]["conditions"][1]["status"] = "True"
            for cs in pod["status"]["containerStatuses"]:
                cs.update(ready=True, started=True, state={"running": {"startedAt": now()}})
            self._put("v1", "pods", ns, pod)
            ready += 1
            workload["status"].update(readyReplicas=ready, availableReplicas=ready)
            self._put(gv, plural, ns, workload)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # clients that hang up or fail the TLS handshake are part of the tests


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server_fake = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve("GET")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def _send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True

    def _chunk(self, data):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _user(self):
        fake = self.server_fake
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return fake.tokens.get(auth[len("Bearer "):])
        cert = self.connection.getpeercert()
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        return None

    def _serve(self, method):
        fake = self.server_fake
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        user = self._user()
        with fake.cond:
            fake.requests.append((method, self.path, user))
        if user is None:
            return self._send_json(401, status(401, "Unauthorized", "Unauthorized"))
        m = PATH.match(url.path)
        if not m or (m.group(1) or m.group(2), m.group(4)) not in KINDS:
            return self._send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        gv = m.group(1) or m.group(2)
        ns, plural, name, log = urllib.parse.unquote(m.group(3)), m.group(4), m.group(5), m.group(6)
        name = urllib.parse.unquote(name) if name else None
        group = gv.split("/")[0] if "/" in gv else ""
        watching = method == "GET" and q.get("watch") in ("1", "true")
        verb = {"PATCH": "patch", "DELETE": "delete", "POST": "create", "PUT": "update"}.get(
            method, "watch" if watching else ("get" if name else "list"))
        if (user, verb, plural) in fake.forbidden:
            subject = f'{plural}{"." + group if group else ""}' + (f' "{name}"' if name else "")
            api_group = f'in API group "{group}"'
            return self._send_json(403, status(403, "Forbidden", f'{subject} is forbidden: User "{user}" cannot {verb} '
                                                                 f'resource "{plural}" {api_group} in the namespace "{ns}"',
                                               {"name": name or "", "group": group, "kind": plural}))
        if ns not in fake.namespaces:
            return self._send_json(404, status(404, "NotFound", f'namespaces "{ns}" not found',
                                               {"name": ns, "kind": "namespaces"}))
        if log:
            return self._logs(ns, name, q)
        if watching:
            return self._watch(gv, plural, ns, q)
        with fake.cond:
            if method == "GET" and name:
                obj = fake.objects.get((gv, plural, ns, name))
                if obj is None:
                    return self._not_found(plural, group, name)
                return self._send_json(200, obj)
            if method == "GET":
                items = [o for k, o in sorted(fake.objects.items()) if k[:3] == (gv, plural, ns) and selector_matches(
                    q.get("labelSelector"), o["metadata"].get("labels", {}))]
                return self._send_json(200, {"kind": KINDS[(gv, plural)] + "List", "apiVersion": gv,
                                             "metadata": {"resourceVersion": str(fake.rv)}, "items": items})
            if method == "DELETE" and name:
                obj = fake._delete((gv, plural, ns, name))
                if obj is None:
                    return self._not_found(plural, group, name)
                return self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                             "details": {"name": name, "group": group, "kind": plural}})
            if method == "PATCH" and name:
                if self.headers.get("Content-Type") != "application/apply-patch+yaml":
                    return self._send_json(415, status(415, "UnsupportedMediaType",
                                                       f'the body of the request was in an unknown format - accepted '
                                                       f'media types include: application/apply-patch+yaml'))
                if not q.get("fieldManager"):
                    return self._send_json(400, status(400, "BadRequest", "PATCH, application/apply-patch+yaml: "
                                                                          "fieldManager is required"))
                try:
                    obj = json.loads(body)  # JSON is YAML; this fake reads only that subset
                except ValueError as e:
                    return self._send_json(400, status(400, "BadRequest", f"error decoding YAML: {e}"))
                code, answer = fake._apply(q["fieldManager"], gv, plural, ns, name, obj, q.get("force") == "true")
                return self._send_json(code, answer)
        return self._send_json(405, status(405, "MethodNotAllowed", f"the server does not allow this method"))

    def _not_found(self, plural, group, name):
        resource = plural + ("." + group if group else "")
        return self._send_json(404, status(404, "NotFound", f'{resource} "{name}" not found',
                                           {"name": name, "group": group, "kind": plural}))

    def _watch(self, gv, plural, ns, q):
        fake = self.server_fake
        selector = q.get("labelSelector")
        timeout = min(float(q.get("timeoutSeconds") or 1800), 1800)
        self._start_chunked("application/json")
        try:
            with fake.cond:
                since = int(q.get("resourceVersion") or fake.rv)
                if fake.expire_next_watch or since < fake.compacted_rv:
                    fake.expire_next_watch = False
                    gone = status(410, "Expired", f"too old resource version: {since} ({fake.compacted_rv})")
                    self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                    return
                deadline = time.monotonic() + (timeout if timeout > 0 else 1800)
                while True:
                    out = [json.dumps({"type": t, "object": o}).encode() + b"\n"
                           for rv, g, p, n, t, o in fake.events
                           if rv > since and (g, p, n) == (gv, plural, ns)
                           and selector_matches(selector, o["metadata"].get("labels", {}))]
                    since = fake.rv
                    for line in out:
                        self._chunk(line)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    fake.cond.wait(min(left, 0.5))
        except (OSError, ssl.SSLError):
            return
        finally:
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (OSError, ssl.SSLError):
                pass

    def _logs(self, ns, pod, q):
        fake = self.server_fake
        with fake.cond:
            if ("v1", "pods", ns, pod) not in fake.objects:
                return self._not_found("pods", "", pod)
            containers = [c["name"] for c in fake.objects[("v1", "pods", ns, pod)]["spec"].get("containers", [])]
            if q.get("container") and q["container"] not in containers:
                return self._send_json(400, status(400, "BadRequest", f'container {q["container"]} is not valid for '
                                                                      f'pod {pod}'))
            lines = list(fake.logs.get((ns, pod), []))
        if q.get("tailLines"):
            lines = lines[-int(q["tailLines"]):] if int(q["tailLines"]) > 0 else []
        if q.get("follow") != "true":
            data = "".join(lines).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._start_chunked("text/plain")
        try:
            sent = len(fake.logs.get((ns, pod), []))
            if lines:
                self._chunk("".join(lines).encode())
            while True:
                with fake.cond:
                    fake.cond.wait_for(lambda: len(fake.logs.get((ns, pod), [])) > sent or
                                       ("v1", "pods", ns, pod) not in fake.objects, timeout=0.5)
                    more = fake.logs.get((ns, pod), [])[sent:]
                    sent += len(more)
                    alive = ("v1", "pods", ns, pod) in fake.objects
                if more:
                    self._chunk("".join(more).encode())
                elif not alive:
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (OSError, ssl.SSLError):
                pass
