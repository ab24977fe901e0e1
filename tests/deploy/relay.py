"""A TCP relay: ``python relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT``.

In tests/deploy/test_k8s.py it plays kube-proxy for the `kubernetes` Service inside a podman pod: the pod's
containers reach the API server at 127.0.0.1:<port> (an address its serving certificate names), and the relay
carries the bytes to the host's loopback (10.0.2.2 under slirp4netns). TLS goes through untouched."""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def main(listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(pipe(reader, up_writer))
            group.create_task(pipe(up_reader, writer))

    server = await asyncio.start_server(handle, listen_host, listen_port)
    print(f"relay {listen_host}:{listen_port} -> {target_host}:{target_port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host, port, target, target_port = sys.argv[1:5]
    asyncio.run(main(host, int(port), target, int(target_port)))
