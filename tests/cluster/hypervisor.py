#!/usr/bin/python3
"""The namespace cluster's "hypervisor": the power controller fence_ns talks to.

A fence agent runs inside a node (pid, mount and network namespaces of its
own) and cannot reach the host's namespaces, where nodes are powered off and
booted: it sends its request over the unix socket this daemon serves, as
fence_xvm talks to fence_virtd. One request per connection, one line:

    on|off|reboot|status NODE    ->  "ok on|off" or "error <text>"
    list                         ->  "ok srv1 srv2 srv3"
    ping                         ->  "ok pong"

Requests for one node are serialized; different nodes proceed in parallel.
Usage: hypervisor.py SOCKET_PATH POWER_SCRIPT NODE...
"""
import os
import socketserver
import subprocess
import sys
import threading
import time

SOCK, POWER, NODES = sys.argv[1], sys.argv[2], sys.argv[3:]
LOCKS = {n: threading.Lock() for n in NODES}


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def power(action, node):
    with LOCKS[node]:
        r = subprocess.run([POWER, action, node], capture_output=True,
                           text=True, timeout=120)
        out = (r.stdout + r.stderr).strip().replace("\n", " | ")
        log(f"{action} {node}: rc={r.returncode} {out}")
        if action == "status":
            return "ok " + ("on" if r.returncode == 0 else "off")
        if r.returncode != 0:
            return f"error {action} {node} failed: {out}"
        return "ok " + ("off" if action == "off" else "on")


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline().decode(errors="replace").split()
        try:
            if line == ["ping"]:
                reply = "ok pong"
            elif line == ["list"]:
                reply = "ok " + " ".join(NODES)
            elif len(line) == 2 and line[0] in ("on", "off", "reboot", "status"):
                if line[1] not in LOCKS:
                    reply = f"error unknown node {line[1]}"
                else:
                    reply = power(line[0], line[1])
            else:
                reply = "error bad request"
        except Exception as e:  # noqa: BLE001 - report anything to the client
            reply = f"error {e}"
        try:
            self.wfile.write((reply + "\n").encode())
        except OSError:
            # A node fencing itself is dead before the answer comes.
            log(f"{' '.join(line)}: requester gone before the reply")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if os.path.exists(SOCK):
    os.unlink(SOCK)
with Server(SOCK, Handler) as srv:
    os.chmod(SOCK, 0o600)
    log(f"listening on {SOCK} for {' '.join(NODES)}")
    srv.serve_forever()
