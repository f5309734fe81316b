"""A small replica for the end-to-end tests: an HTTP server on its contract address.

GET /healthz  200, or 500 while the file "sick" exists in its data volume
GET /env      the replica's environment as JSON
On start it appends its pid to "starts" in its data volume and removes "sick".
"""
import http.server
import json
import os

data = os.environ.get("ZEPPELIN_VOLUME_DATA")
if data:
    with open(os.path.join(data, "starts"), "a") as f:
        f.write(f"{os.getpid()}\n")
    try:
        os.remove(os.path.join(data, "sick"))
    except FileNotFoundError:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            sick = data and os.path.exists(os.path.join(data, "sick"))
            self.send_response(500 if sick else 200)
            self.end_headers()
            self.wfile.write(b"sick\n" if sick else b"ok\n")
        elif self.path == "/env":
            body = json.dumps(dict(os.environ)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer((os.environ["ZEPPELIN_HOST"], int(os.environ["PORT"])), Handler)
print(f"replica {os.environ['ZEPPELIN_SERVICE']}/{os.environ['ZEPPELIN_REPLICA']} listening on "
      f"{os.environ['ZEPPELIN_HOST']}:{os.environ['PORT']}", flush=True)
server.serve_forever()
