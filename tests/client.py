"""A client in another language: nats-py speaking the documented JSON API (docs/PROTOCOL.md).

Usage: client.py NATS_URL [NKEY_FILE [CA_FILE]]. Without NKEY_FILE, an open mesh: the "default" tenant's subjects;
with it, a secured mesh (compose's): the user's public key is the tenant, and replies come under its own inbox
prefix, the only one its permissions let it subscribe to (docs/SECURITY.md); with CA_FILE, TLS to a server whose
certificate chains to that CA. Prints one JSON document per line: the submit
reply, the final event, the status record, and the reply to a bad request.
"""
import asyncio
import json
import sys
import uuid

import nats


async def main(url: str, nkey_file: str | None, ca_file: str | None) -> None:
    options, tenant = {}, "default"
    if nkey_file:
        import nkeys

        with open(nkey_file) as f:
            seed = f.read().strip()
        tenant = nkeys.from_seed(seed.encode()).public_key.decode()
        options = {"nkeys_seed": nkey_file, "inbox_prefix": f"_INBOX_{tenant}"}
    if ca_file:
        import ssl

        options["tls"] = ssl.create_default_context(cafile=ca_file)
    nc = await nats.connect(url, **options)
    job_id = "py-" + uuid.uuid4().hex[:12]
    events = await nc.subscribe(f"jobs.events.{tenant}.{job_id}")
    await nc.flush()
    request = {
        "function": {"source": "def main(x):\n    return {'hello': x}\n"},
        "input": "from nats-py",
        "job_id": job_id,
    }
    reply = await nc.request(f"jobs.submit.{tenant}", json.dumps(request).encode(), timeout=5)
    print(reply.data.decode())
    while True:
        msg = await events.next_msg(timeout=20)
        event = json.loads(msg.data)
        if event["event"] in ("completed", "failed"):
            print(json.dumps(event))
            break
    status = await nc.request(f"jobs.status.{tenant}", json.dumps({"job_id": job_id}).encode(), timeout=5)
    print(status.data.decode())
    bad = await nc.request(f"jobs.submit.{tenant}", b'{"function": {"name": "x"}, "extra": 1}', timeout=5)
    print(bad.data.decode())
    await nc.close()


asyncio.run(main(sys.argv[1], *(sys.argv[2:4] + [None, None])[:2]))
