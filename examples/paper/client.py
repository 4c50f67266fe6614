"""Open a session workload on a mesh and send it requests, printing each reply (nats-py, the JSON API of
docs/PROTOCOL.md, "Sessions").

Usage: python examples/paper/client.py FILE.py ENTRY OPENING_JSON [REQUEST_JSON ...] [--nats URL] [--id ID]
Prints one JSON line per reply (the opening's first) as the session's `reply` events carry them; exits 1 on a
reply with an error or when a reply does not come within --timeout seconds. The NATS URL: --nats, else
$MICROLAMBDA_NATS, else the URL a running `microlambda testbed` wrote, else nats://127.0.0.1:4222; on a secured
testbed, as its client user (or as $MICROLAMBDA_NKEY's)."""
import argparse
import asyncio
import json
import os
import sys
import uuid

import nats


def running_testbed():
    """(URL, identities directory or None) of a running `microlambda testbed`, from the file it writes (its URL,
    its pid, its identities directory: src/config.rs), or (None, None)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    try:
        with open(os.path.join(cache, "microlambda", "nats-url")) as f:
            lines = [line.strip() for line in f.read().splitlines()]
        url, pid = lines[0], int(lines[1])
        os.kill(pid, 0)  # used while that process lives
        return url, (lines[2] if len(lines) > 2 and lines[2] else None)
    except (OSError, IndexError, ValueError):
        return None, None


def connect_options(given):
    """The URL, nats-py options and tenant: --nats, else $MICROLAMBDA_NATS, else a running testbed's URL, else
    the default; as $MICROLAMBDA_NKEY's user, else as the testbed's client user when the URL is the testbed's;
    over TLS trusting $MICROLAMBDA_TLS_CA, else the testbed's CA when it has one.
    The tenant (a token of every subject the client uses) is the user's public nkey, "default" without one
    (docs/PROTOCOL.md, "Tenants")."""
    testbed_url, identities = running_testbed()
    url = given or os.environ.get("MICROLAMBDA_NATS") or testbed_url or "nats://127.0.0.1:4222"
    seed = os.environ.get("MICROLAMBDA_NKEY")
    ca = os.environ.get("MICROLAMBDA_TLS_CA")
    if not seed and identities and url == testbed_url:
        seed = os.path.join(identities, "client.nk")
        # The testbed's server speaks TLS only, with its own CA, unless it was started without TLS.
        testbed_ca = os.path.join(identities, "ca.pem")
        ca = ca or (testbed_ca if os.path.isfile(testbed_ca) else None)
    options = {}
    if ca:
        import ssl

        options["tls"] = ssl.create_default_context(cafile=ca)
    if not seed:
        return url, options, "default"
    import nkeys

    # Replies come under the user's own inbox prefix, the only one its permissions let it subscribe to
    # (docs/SECURITY.md; src/bus.rs, inbox_prefix).
    with open(seed, "rb") as f:
        public = nkeys.from_seed(f.read().strip()).public_key.decode()
    return url, {**options, "nkeys_seed": seed, "inbox_prefix": f"_INBOX_{public}"}, public


async def run(args):
    url, options, tenant = connect_options(args.nats)
    nc = await nats.connect(url, **options)
    sid = args.id or "paper-" + uuid.uuid4().hex[:12]
    events = await nc.subscribe(f"jobs.events.{tenant}.{sid}")
    await nc.flush()
    with open(args.file) as f:
        source = f.read()
    body = {"function": {"source": source, "entry": args.entry}, "input": json.loads(args.opening),
            "job_id": sid, "session": True}
    reply = json.loads((await nc.request(f"jobs.submit.{tenant}", json.dumps(body).encode(), timeout=10)).data)
    if reply.get("status") != "accepted":
        print(json.dumps(reply), file=sys.stderr)
        return 1
    for req in args.requests:
        body = json.dumps({"session": sid, "input": json.loads(req)}).encode()
        reply = json.loads((await nc.request(f"sessions.request.{tenant}", body, timeout=10)).data)
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
