"""A gateway process with inbound SMTP only, that can be made to die mid-delivery.

``python -m tests.mail_in_crash_child <tmp dir> <crash>``: opens the store seeded in
``<tmp dir>/store.db``, starts the MX on port 0, prints the port, and serves. ``crash``:

- ``none``: a normal run (the restart after a crash);
- ``after-first-link``: ``os._exit`` right after a message for several mailboxes was
  linked into the first of them (the 250 has been sent);
- ``before-link``: ``os._exit`` after the message was written to a Maildir's tmp/ but
  before it was linked into new/ (no 250 was sent).

``os._exit`` skips every cleanup, as a kill -9 or a power cut would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

from gateway.audit import AuditLog
from gateway.auth import build_portal
from gateway.config import Config
from gateway.config.mail import MailConfig
from gateway.metrics import Metrics
from gateway.runtime.server import ServerContext
from gateway.store import open_store
from ratelimit import NoLimits
from smtp.inbound.context import CONFIG_EXTRA
from smtp.inbound.delivery import MaildirDelivery
from smtp.inbound.server import InboundSmtpServer, build_inbound
from smtp.maildir.durable import write_synced
from tests.mail_in_world import AUTH, inbound_config

CRASH_CODE = 70


class CrashingDelivery(MaildirDelivery):
    crash = "none"

    def _link_one(self, source: Path, box: Path, unique: str) -> None:
        super()._link_one(source, box, unique)
        if self.crash == "after-first-link":
            os._exit(CRASH_CODE)

    def _write_one(self, parcel: object, content: bytes) -> None:
        if self.crash == "before-link":
            box = self._maildir(parcel.mailboxes[0])  # type: ignore[attr-defined]
            write_synced(box / "tmp" / self.unique_for(parcel, 0), content)  # type: ignore[arg-type]
            os._exit(CRASH_CODE)
        super()._write_one(parcel, content)  # type: ignore[arg-type]


async def main(tmp: Path, crash: str) -> None:
    store = await open_store(f"sqlite:///{tmp / 'store.db'}")
    config = Config(auth=AUTH, mail=MailConfig(enabled=True, hostname="mail.example.com"))
    config = dataclasses.replace(
        config, runtime=dataclasses.replace(config.runtime, data_dir=tmp / "data")
    )
    metrics = Metrics()
    audit = AuditLog(store.audit)
    portal = await build_portal(AUTH, store, audit=audit, metrics=metrics)
    inbound = dataclasses.replace(inbound_config(53), dnsbl_zones=[])
    ctx = ServerContext(config=config, store=store, portal=portal, policy=NoLimits(),
                        audit=audit, metrics=metrics, extras={CONFIG_EXTRA: inbound})
    (server,) = build_inbound(ctx)
    assert isinstance(server, InboundSmtpServer)
    delivery = server._delivery
    delivery.__class__ = CrashingDelivery
    CrashingDelivery.crash = crash
    (address,) = await server.start()
    print(address[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
