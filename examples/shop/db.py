"""A replica of the shop's db: counts visits in a file in its own volume."""
import http.server
import os

host, port = os.environ["ZEPPELIN_HOST"], int(os.environ["PORT"])
counter = os.path.join(os.environ["ZEPPELIN_VOLUME_DATA"], "visits")
replica = os.environ["ZEPPELIN_REPLICA"]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            visits = int(open(counter).read()) if os.path.exists(counter) else 0
            visits += 1
            with open(counter, "w") as f:
                f.write(str(visits))
            body = f"db replica {replica}: visit {visits}\n".encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        if self.path != "/healthz":
            print(f"{self.command} {self.path}", flush=True)


print(f"db {replica} of {os.environ['ZEPPELIN_REPLICAS']} listening on {host}:{port}", flush=True)
http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()
