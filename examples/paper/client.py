"""Open a session workload on a mesh and send it requests, printing each reply (nats-py, the JSON API of
docs/PROTOCOL.md, "Sessions").

Usage: python examples/paper/client.py FILE.py ENTRY OPENING_JSON [REQUEST_JSON ...] [--nats URL] [--id ID]
Prints one JSON line per reply (the opening's first) as the session's `reply` events carry them; exits 1 on a
reply with an error or when a reply does not come within --timeout seconds. The NATS URL: --nats, else
$MICROLAMBDA_NATS, else the URL a running `microlambda testbed` wrote, else nats://127.0.0.1:4222."""
import argparse
import asyncio
import json
import os
import sys
import uuid

import nats


def nats_url(given):
    if given:
        return given
    if os.environ.get("MICROLAMBDA_NATS"):
        return os.environ["MICROLAMBDA_NATS"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    try:
        # The testbed's URL, then its pid (src/config.rs, running_testbed_url): used while that process lives.
        with open(os.path.join(cache, "microlambda", "nats-url")) as f:
            lines = f.read().split()
        url, pid = lines[0], int(lines[1])
        os.kill(pid, 0)
        return url
    except (OSError, IndexError, ValueError):
        return "nats://127.0.0.1:4222"


async def run(args):
    nc = await nats.connect(nats_url(args.nats))
    sid = args.id or "paper-" + uuid.uuid4().hex[:12]
    events = await nc.subscribe(f"jobs.events.{sid}")
    await nc.flush()
    with open(args.file) as f:
        source = f.read()
    body = {"function": {"source": source, "entry": args.entry}, "input": json.loads(args.opening),
            "job_id": sid, "session": True}
    reply = json.loads((await nc.request("jobs.submit", json.dumps(body).encode(), timeout=10)).data)
    if reply.get("status") != "accepted":
        print(json.dumps(reply), file=sys.stderr)
        return 1
    for req in args.requests:
        body = json.dumps({"session": sid, "input": json.loads(req)}).encode()
        reply = json.loads((await nc.request("sessions.request", body, timeout=10)).data)
        if "n" not in reply:
            print(json.dumps(reply), file=sys.stderr)
            return 1
    status = 0
    for n in range(len(args.requests) + 1):
        while True:
            event = json.loads((await events.next_msg(timeout=args.timeout)).data)
            if event["event"] == "reply":
                break
            if event["event"] in ("completed", "failed"):
                print(json.dumps(event), file=sys.stderr)
                return 1
        assert event["n"] == n, event
        if "error" in event:
            print(json.dumps({"n": n, "error": event["error"]}), file=sys.stderr)
            status = 1
        else:
            print(json.dumps(event.get("output")), flush=True)
    await nc.close()
    return status


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file")
    p.add_argument("entry")
    p.add_argument("opening")
    p.add_argument("requests", nargs="*")
    p.add_argument("--nats")
    p.add_argument("--id")
    p.add_argument("--timeout", type=float, default=60.0)
    sys.exit(asyncio.run(run(p.parse_args())))
