"""A replica of the shop's web tier: forwards each request to the next db replica."""
import http.server
import itertools
import os
import urllib.request

host, port = os.environ["ZEPPELIN_HOST"], int(os.environ["PORT"])
dbs = itertools.cycle(os.environ["ZEPPELIN_SERVICE_DB"].split(","))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with urllib.request.urlopen(f"http://{next(dbs)}{self.path}", timeout=2) as r:
            body = r.read()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


print(f"web {os.environ['ZEPPELIN_REPLICA']} on {host}:{port}, db at {os.environ['ZEPPELIN_SERVICE_DB']}", flush=True)
http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()
