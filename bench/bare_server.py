"""The ceiling: an aiosmtpd server whose handler does nothing (accepts every message)."""

import asyncio
import sys

from aiosmtpd.smtp import SMTP


class Nothing:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Nothing(), hostname="bare"), "127.0.0.1", port,
                                      backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import logging

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
