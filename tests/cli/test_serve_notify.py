#!/usr/bin/env python3
"""test_serve_notify.py - `seslm serve` under a service manager: READY=1 on $NOTIFY_SOCKET only once
/healthz answers; SIGHUP gives RELOADING=1 then READY=1; SIGTERM gives STOPPING=1 and exit 0. Plays
systemd's side of the protocol (a datagram socket, path and @abstract forms); a NOTIFY_SOCKET that cannot
be reached is reported but does not stop the server.
usage: test_serve_notify.py SESLM MODEL_DIR
"""
import os, signal, socket, subprocess, sys, tempfile, time, urllib.request

exe, model = sys.argv[1], sys.argv[2]


def start(notify):
    env = dict(os.environ, NOTIFY_SOCKET=notify)
    p = subprocess.Popen([exe, "serve", "--model", model, "--port", "0", "--threads", "1"], env=env,
                         stderr=subprocess.PIPE, text=True)
    return p


def port_of(p):
    line = p.stderr.readline()
    assert "listening on http://" in line, line
    return int(line.rsplit(":", 1)[1])


def recv(sock, timeout=120):
    sock.settimeout(timeout)
    msg = sock.recv(4096).decode()
    return dict(kv.split("=", 1) for kv in msg.splitlines())


def healthz(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
        return r.status


with tempfile.TemporaryDirectory() as tmp:
    for form in ("path", "abstract"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if form == "path":
            addr = os.path.join(tmp, "notify.sock")
            s.bind(addr)
            notify = addr
        else:
            name = f"seslm-test-notify-{os.getpid()}"
            s.bind("\0" + name)
            notify = "@" + name
        p = start(notify)
        try:
            m = recv(s)
            assert m.get("READY") == "1", m
            assert m.get("MAINPID") == str(p.pid), (m, p.pid)
            port = port_of(p)
            assert f"port {port}" in m.get("STATUS", ""), m
            assert healthz(port) == 200  # ready means serving, at once
            p.send_signal(signal.SIGHUP)
            assert recv(s).get("RELOADING") == "1"
            m = recv(s)
            assert m.get("READY") == "1" and "serving" in m.get("STATUS", ""), m
            assert healthz(port) == 200
            p.send_signal(signal.SIGTERM)
            assert recv(s).get("STOPPING") == "1"
            assert p.wait(timeout=60) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            s.close()
        print(f"ok: {form} NOTIFY_SOCKET: READY=1 (healthz answers), RELOADING=1 / READY=1 on SIGHUP, STOPPING=1, exit 0")

    # a NOTIFY_SOCKET nobody listens on: the server still serves, the failure is said on stderr
    p = start(os.path.join(tmp, "nobody.sock"))
    try:
        port = port_of(p)
        err = p.stderr.readline()
        assert "readiness notification" in err, err
        assert healthz(port) == 200
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print("ok: an unreachable NOTIFY_SOCKET is reported and the node serves on")
