#!/usr/bin/python3
"""A real SMTP server on loopback for tests (Debian's python3-aiosmtpd).

Usage: smtp_sink.py PORT FOLDER [DIE_AFTER]
Each accepted message is written to FOLDER/<uuid>.eml (atomically, before the server
answers 250), with the envelope recipients on an "X-Envelope-To:" first line. Prints
"ready" on stdout once listening. Runs until killed; with DIE_AFTER, the process dies
(exit without answering) in the middle of the transaction after DIE_AFTER accepted
messages, at RCPT TO: a crash at a known point, so no accepted mail is left unanswered.
Recipients are refused at RCPT TO by the start of their local part, as real servers do:
  refused-   550 5.1.1 (no such mailbox)        nouser-    550 without an enhanced code
  badname-   553 5.1.3 (bad address syntax)     busy-      451 4.3.0 (try again later)
  denied-    554 5.7.1 (relay access denied, the address in the text, as Postfix says it)
  unrelayed- 550 5.7.1 (unable to relay)        unauth-    530 5.7.0 (authentication required)
"""
import asyncio
import os
import sys
import uuid

from aiosmtpd.controller import Controller


REFUSALS = {
    "refused-": "550 5.1.1 No such mailbox",
    "nouser-": "550 No such user here",
    "badname-": "553 5.1.3 Bad recipient address syntax",
    "busy-": "451 4.3.0 Try again later",
    "denied-": "554 5.7.1 <{address}>: Relay access denied",
    "unrelayed-": "550 5.7.1 Unable to relay",
    "unauth-": "530 5.7.0 Authentication required",
}


class Sink:
    def __init__(self, folder, die_after):
        self.folder = folder
        self.die_after = die_after
        self.accepted = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.die_after is not None and self.accepted >= self.die_after:
            os._exit(3)
        for prefix, reply in REFUSALS.items():
            if address.startswith(prefix):
                return reply.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        name = uuid.uuid4().hex
        tmp = os.path.join(self.folder, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.folder, name + ".eml"))
        self.accepted += 1
        return "250 OK"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    die_after = int(sys.argv[3]) if len(sys.argv) > 3 else None
    os.makedirs(folder, exist_ok=True)
    controller = Controller(Sink(folder, die_after), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
