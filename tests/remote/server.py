#!/usr/bin/env python3
"""A loopback stand-in for llama-server, ollama and vLLM, for palaver's remote-backend tests.

It listens on 127.0.0.1 on a free port, prints the port on its first line of
standard output, and serves until its standard input closes (so it never
outlives the test that started it) or it gets SIGTERM.

URLs are /FLAVOR[/SCENARIO]/v1/models, /FLAVOR[/SCENARIO]/v1/chat/completions
and /FLAVOR[/SCENARIO]/props, FLAVOR one of llama, ollama, vllm.  Without a
scenario, a chat request gets the flavor's recorded stream (streams/FLAVOR.sse)
byte for byte, in HTTP/1.1 chunks as those servers send them.  A SCENARIO
replays a fault instead (see SCENARIOS below).  With --log FILE, each request
is appended to FILE as one JSON line: method, path, authorization, body.
"""
import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
STREAMS = os.path.join(HERE, "streams")
FLAVORS = ("llama", "ollama", "vllm")

# Error bodies as each server words them.
ERRORS = {
    "llama": {
        401: {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}},
        404: {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}},
        429: {"error": {"code": 429, "message": "too many requests", "type": "unavailable_error"}},
        500: {"error": {"code": 500, "message": "the request exceeds the available context size, try increasing it",
                        "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}},
        503: {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
    },
    "ollama": {
        401: {"error": {"message": "unauthorized", "type": "api_error", "param": None, "code": None}},
        404: {"error": {"message": "model \"nope\" not found, try pulling it first", "type": "api_error",
                        "param": None, "code": None}},
        429: {"error": {"message": "server busy, please try again.  maximum pending requests exceeded",
                        "type": "api_error", "param": None, "code": None}},
        500: {"error": {"message": "llama runner process has terminated: exit status 2", "type": "api_error",
                        "param": None, "code": None}},
        503: {"error": {"message": "server busy", "type": "api_error", "param": None, "code": None}},
    },
    "vllm": {
        401: {"error": "Unauthorized"},
        404: {"object": "error", "message": "The model `nope` does not exist.", "type": "NotFoundError",
              "param": None, "code": 404},
        429: {"object": "error", "message": "Too many requests", "type": "TooManyRequests", "param": None,
              "code": 429},
        500: {"object": "error", "message": "EngineCore encountered an issue", "type": "InternalServerError",
              "param": None, "code": 500},
        503: {"object": "error", "message": "Service Unavailable", "type": "ServiceUnavailable", "param": None,
              "code": 503},
    },
}

LOG_LOCK = threading.Lock()
COUNTS = {}  # scenario -> chat requests seen


def read_stream(flavor):
    with open(os.path.join(STREAMS, flavor + ".sse"), "rb") as f:
        return f.read()


def events(data):
    """The stream cut into its events (each with its blank line)."""
    parts = data.split(b"\n\n")
    return [p + b"\n\n" for p in parts if p]


def chunk_json(flavor, text, finish=None):
    """One delta chunk shaped as the flavor's (for the synthesized scenarios)."""
    o = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1735000000, "model": flavor,
         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    return b"data: " + json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-openai/1"

    def log_message(self, fmt, *args):  # quiet: the tests read their own output
        pass

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    # ---- plumbing -------------------------------------------------------------------
    def route(self):
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if not parts or parts[0] not in FLAVORS:
            return None, None, None
        flavor = parts[0]
        rest = parts[1:]
        scenario = ""
        if rest and rest[0] not in ("v1", "props"):
            scenario = rest[0]
            rest = rest[1:]
        return flavor, scenario, "/".join(rest)

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def start_stream(self, ctype="text/event-stream"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def reset(self):
        """Close with a TCP reset (SO_LINGER 0), as a crashed server would."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def log_request_line(self, body):
        if not self.server.log_path:
            return
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        line = json.dumps({"method": self.command, "path": self.path,
                           "authorization": self.headers.get("Authorization"), "body": parsed})
        with LOG_LOCK, open(self.server.log_path, "a") as f:
            f.write(line + "\n")

    # ---- GET ------------------------------------------------------------------------
    def do_GET(self):
        self.log_request_line(b"")
        flavor, scenario, rest = self.route()
        if flavor is None:
            return self.send_json(404, {"error": {"code": 404, "message": "File Not Found",
                                                  "type": "not_found_error"}})
        if scenario == "e401":
            return self.send_json(401, ERRORS[flavor][401])
        if scenario == "silent":
            return self.hang()
        if rest == "v1/models":
            if scenario == "nomodels":
                return self.send_json(404, ERRORS[flavor][404])
            if scenario == "escmodels":  # a hostile name: C1 CSI colours a terminal
                return self.send_json(200, {"object": "list", "data": [
                    {"id": "evil\u009b31mname", "object": "model",
                     "owned_by": "x"}]})
            with open(os.path.join(STREAMS, flavor + "-models.json"), "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if rest == "props" and flavor == "llama":
            with open(os.path.join(STREAMS, "llama-props.json"), "rb") as f:
                return self.send_json(200, json.load(f))
        return self.send_json(404, ERRORS[flavor][404])

    def hang(self):
        """Never answer; return when the client goes away (or after a minute)."""
        self.connection.settimeout(0.1)
        until = time.time() + 60
        while time.time() < until:
            try:
                if not self.connection.recv(1):
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        self.close_connection = True

    # ---- POST -----------------------------------------------------------------------
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.log_request_line(body)
        flavor, scenario, rest = self.route()
        if flavor is None or rest != "v1/chat/completions":
            return self.send_json(404, {"error": {"code": 404, "message": "File Not Found",
                                                  "type": "not_found_error"}})
        with LOG_LOCK:
            COUNTS[scenario] = COUNTS.get(scenario, 0) + 1
            count = COUNTS[scenario]
        stream = read_stream(flavor)
        fn = SCENARIOS.get(scenario)
        if fn is None:
            self.start_stream()
            for ev in events(stream):
                self.chunk(ev)
            self.end_stream()
            return None
        return fn(self, flavor, stream, count)


# ---- scenarios (the SCENARIO part of the URL) -------------------------------------------
def sc_bytewise(h, flavor, stream, count):
    """Every byte in its own HTTP chunk and TCP segment: SSE lines split everywhere."""
    h.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    h.start_stream()
    for i in range(len(stream)):
        h.chunk(stream[i:i + 1])
        time.sleep(0.0005)
    h.end_stream()


def sc_crlf(h, flavor, stream, count):
    """The stream with CRLF line ends and keep-alive comments, as sse-starlette and proxies send."""
    h.start_stream()
    h.chunk(b": OPENROUTER PROCESSING\r\n\r\n")
    for i, ev in enumerate(events(stream)):
        h.chunk(ev.replace(b"\n", b"\r\n"))
        if i % 3 == 0:
            h.chunk(b": ping - 2025-01-01 00:00:00.000000+00:00\r\n\r\n")
    h.end_stream()


def sc_keepalive(h, flavor, stream, count):
    """Two seconds of nothing but keep-alive comments before the reply."""
    h.start_stream()
    for _ in range(8):
        h.chunk(b": keep-alive\n\n")
        time.sleep(0.25)
    for ev in events(stream):
        h.chunk(ev)
    h.end_stream()


def sc_slow(h, flavor, stream, count):
    """Sixty words, one every 100 ms (cancel tests)."""
    h.start_stream()
    try:
        for i in range(60):
            h.chunk(chunk_json(flavor, "w%d " % i))
            time.sleep(0.1)
        h.chunk(chunk_json(flavor, "", "stop"))
        h.chunk(b"data: [DONE]\n\n")
        h.end_stream()
    except OSError:
        pass  # the client closed the stream


def sc_truncated(h, flavor, stream, count):
    """The stream stops in the middle of an event, then the connection closes."""
    evs = events(stream)
    h.start_stream()
    for ev in evs[:4]:
        h.chunk(ev)
    h.chunk(evs[4][:len(evs[4]) // 2])
    h.wfile.flush()
    h.close_connection = True


def sc_ended(h, flavor, stream, count):
    """A clean end of the HTTP body after three words: no finish_reason, no [DONE]."""
    evs = events(stream)
    h.start_stream()
    for ev in evs[:4]:
        h.chunk(ev)
    h.end_stream()


def sc_reset(h, flavor, stream, count):
    """Three events, then a TCP reset."""
    evs = events(stream)
    h.start_stream()
    for ev in evs[:4]:
        h.chunk(ev)
    time.sleep(0.05)
    h.reset()


def sc_flaky(h, flavor, stream, count):
    """The first request is reset before any byte; the next ones are answered."""
    if count == 1:
        return h.reset()
    h.start_stream()
    for ev in events(stream):
        h.chunk(ev)
    h.end_stream()


def sc_silent(h, flavor, stream, count):
    h.hang()


def sc_garbage(h, flavor, stream, count):
    """10 MB of random bytes as an event stream."""
    rnd = random.Random(23)
    h.start_stream()
    try:
        for _ in range(160):
            h.chunk(bytes(rnd.getrandbits(8) for _ in range(65536)))
        h.end_stream()
    except OSError:
        pass


def sc_html(h, flavor, stream, count):
    """A web page where the API should be."""
    body = b"<html><body>It works!</body></html>\n"
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def sc_badutf8(h, flavor, stream, count):
    """Invalid UTF-8 inside the JSON strings (a lone continuation byte, a cut sequence, 0xff)."""
    h.start_stream()
    for part in (b"caf\xc3", b"\xa9 ok ", b"bad \xff\xfe here ", b"cut \xe2\x98", b" end"):
        h.chunk(b'data: {"choices":[{"index":0,"delta":{"content":"' + part + b'"},"finish_reason":null}]}\n\n')
    h.chunk(chunk_json(flavor, "", "stop"))
    h.chunk(b"data: [DONE]\n\n")
    h.end_stream()


def sc_malformed(h, flavor, stream, count):
    evs = events(stream)
    h.start_stream()
    for ev in evs[:3]:
        h.chunk(ev)
    h.chunk(b'data: {"choices":[{"delta":{"content":"x"}\n\n')
    h.end_stream()


def sc_midstream(h, flavor, stream, count):
    """Words, then the error as llama-server writes it inside the stream."""
    evs = events(stream)
    h.start_stream()
    for ev in evs[:3]:
        h.chunk(ev)
    h.chunk(b'data: {"error":{"code":500,"message":"slot unavailable","type":"server_error"}}\n\n')
    h.end_stream()


def sc_legacy_error(h, flavor, stream, count):
    """The older llama-server form: an "error:" line."""
    evs = events(stream)
    h.start_stream()
    for ev in evs[:3]:
        h.chunk(ev)
    h.chunk(b'error: {"code":500,"message":"out of memory","type":"server_error"}\n\n')
    h.end_stream()


def sc_json(h, flavor, stream, count):
    """A server that ignores "stream": one chat.completion object."""
    h.send_json(200, {"id": "chatcmpl-9", "object": "chat.completion", "created": 1735000000, "model": flavor,
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "All at once."},
                                   "finish_reason": "length"}],
                      "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}})


def sc_reasoning(h, flavor, stream, count):
    h.start_stream()
    for t in ("Let me", " think."):
        o = {"choices": [{"index": 0, "delta": {"reasoning_content": t}, "finish_reason": None}]}
        h.chunk(b"data: " + json.dumps(o).encode() + b"\n\n")
    h.chunk(chunk_json(flavor, "Answer."))
    h.chunk(chunk_json(flavor, "", "stop"))
    h.chunk(b"data: [DONE]\n\n")
    h.end_stream()


def sc_stopword(h, flavor, stream, count):
    """A reply that runs past a stop string the server did not honour."""
    h.start_stream()
    for t in ("one two ", "th", "ree END", "ING four"):
        h.chunk(chunk_json(flavor, t))
    h.chunk(chunk_json(flavor, "", "stop"))
    h.chunk(b"data: [DONE]\n\n")
    h.end_stream()


def error_scenario(status, retry_after=None):
    def fn(h, flavor, stream, count):
        extra = {"Retry-After": retry_after} if retry_after is not None else None
        h.send_json(status, ERRORS[flavor][status], extra)
    return fn


def sc_busy_once(h, flavor, stream, count):
    """503 with Retry-After on the first request, then the reply."""
    if count == 1:
        return h.send_json(503, ERRORS[flavor][503], {"Retry-After": "0"})
    h.start_stream()
    for ev in events(stream):
        h.chunk(ev)
    h.end_stream()


SCENARIOS = {
    "bytewise": sc_bytewise,
    "crlf": sc_crlf,
    "keepalive": sc_keepalive,
    "slow": sc_slow,
    "truncated": sc_truncated,
    "ended": sc_ended,
    "reset": sc_reset,
    "flaky": sc_flaky,
    "silent": sc_silent,
    "silentchat": sc_silent,
    "garbage": sc_garbage,
    "html": sc_html,
    "badutf8": sc_badutf8,
    "malformed": sc_malformed,
    "midstream": sc_midstream,
    "legacyerror": sc_legacy_error,
    "json": sc_json,
    "reasoning": sc_reasoning,
    "stopword": sc_stopword,
    "e401": error_scenario(401),
    "e404": error_scenario(404),
    "e429": error_scenario(429, "0"),
    "e500": error_scenario(500),
    "busyonce": sc_busy_once,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", help="append each request as a JSON line to this file")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.log_path = args.log
    print(srv.server_address[1], flush=True)

    def watch_stdin():
        # the test that started us is gone when our stdin closes
        try:
            while sys.stdin.buffer.read(1):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    srv.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
