"""A real dockerd for the tests, and tiny app images built without a registry.

``GATEWAY_TEST_DOCKER_HOST`` names a daemon to use instead (``unix:///…`` or ``tcp://…``).
Otherwise ``DockerDaemon`` runs a private one (Debian's docker.io; root is needed): its data
root, exec root, socket and log in a temp dir, started with ``--bridge=none
--iptables=false --ip-forward=false --ip-masq=false`` so it creates no docker0 bridge, no
iptables chains and leaves ``ip_forward`` alone (the tests use host networking on loopback).
Stopping it unmounts what dockerd leaves mounted under that dir (the ``netns/default``
nsfs mount) and deletes the dir.

``GATEWAY_TEST_NO_DOCKER=<reason>`` skips the Docker tests (for machines where dockerd
cannot run); without it, a missing Docker fails them.

Images are made as ``docker import`` does, from a rootfs tar holding a static busybox (the
``busybox-static`` package) and symlinks to the applets the apps use.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import aiodocker
import aiohttp

ENV_DOCKER_HOST = "GATEWAY_TEST_DOCKER_HOST"
ENV_NO_DOCKER = "GATEWAY_TEST_NO_DOCKER"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# dockerd lives in /usr/sbin, which a non-login PATH may lack.
DOCKERD_CANDIDATES = ("/usr/sbin/dockerd", "/usr/bin/dockerd")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
APPLETS = ("sh", "env", "httpd", "sleep", "cat", "echo", "mkdir", "mv", "ls", "id", "printf")
ROOTFS_DIRS = ("bin", "tmp", "run", "app", "app/data", "app/code", "etc", "proc", "sys", "dev")


def find_dockerd() -> str | None:
    found = shutil.which("dockerd")
    if found:
        return found
    return next((p for p in DOCKERD_CANDIDATES if Path(p).exists()), None)


class DockerDaemon:
    """A throwaway dockerd: ``start()``, ``await ready()``, ``url``, ``stop()``."""

    def __init__(self, dockerd: str) -> None:
        self.dockerd = dockerd
        # Short: the socket path must fit a sockaddr_un (108 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="gw-docker-"))
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.log = self.root / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = self.root / "daemon.json"
        # An empty config file: whatever /etc/docker/daemon.json says does not apply here.
        config.write_text("{}\n")
        command = [
            self.dockerd,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--config-file", str(config),
            "-H", self.url,
            "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    async def ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"dockerd exited at start:\n{self.log_tail()}")
            if self.socket.exists():
                docker = aiodocker.Docker(url=self.url)
                try:
                    await docker.version()
                    return
                except (aiodocker.DockerError, aiohttp.ClientError, OSError):
                    pass
                finally:
                    await docker.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd not ready after {timeout:.0f}s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        try:
            process = self._process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
        finally:
            self._unmount_leftovers()
            shutil.rmtree(self.root, ignore_errors=True)

    def _unmount_leftovers(self) -> None:
        """dockerd leaves ``<exec-root>/netns/default`` mounted (machine-notes §4)."""
        prefix = f"{self.root}/"
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def find_static_busybox() -> Path:
    """A busybox that runs in an empty rootfs: it must be static (``busybox-static``)."""
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.exists() and _is_static(path):
            return path
    raise RuntimeError(
        "no static busybox at /bin/busybox: install the busybox-static package "
        "(scripts/install --test does)"
    )


def _is_static(path: Path) -> bool:
    """No PT_INTERP program header: the ELF names no dynamic loader."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        return False
    order = "little" if data[5] == 1 else "big"
    if data[4] == 2:  # ELF64
        phoff, entsize, count = (int.from_bytes(data[a:b], order)
                                 for a, b in ((0x20, 0x28), (0x36, 0x38), (0x38, 0x3A)))
    else:  # ELF32
        phoff, entsize, count = (int.from_bytes(data[a:b], order)
                                 for a, b in ((0x1C, 0x20), (0x2A, 0x2C), (0x2C, 0x2E)))
    pt_interp = 3
    return all(
        int.from_bytes(data[phoff + i * entsize:phoff + i * entsize + 4], order) != pt_interp
        for i in range(count)
    )


def busybox_rootfs(busybox: Path) -> bytes:
    """The rootfs of a busybox image as a tar: the binary, its applets, empty mount points."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ROOTFS_DIRS:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        data = busybox.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buffer.getvalue()


async def import_image(docker: aiodocker.Docker, rootfs: bytes, reference: str,
                       command: list[str]) -> None:
    """``docker import --change 'CMD …' rootfs.tar REFERENCE`` through the Engine API."""
    repo, _, tag = reference.rpartition(":")
    params = {
        "fromSrc": "-", "repo": repo, "tag": tag,
        "changes": f"CMD {json.dumps(command)}",
    }
    # aiodocker has no wrapper for an import from a request body; its query helper does.
    async with docker._query(
        "images/create", method="POST", params=params, data=rootfs,
        headers={"Content-Type": "application/x-tar"},
    ) as response:
        body = await response.text()
    for line in filter(None, body.splitlines()):
        message = json.loads(line)
        if "error" in message:
            raise RuntimeError(f"docker import {reference}: {message['error']}")


async def remove_image(docker: aiodocker.Docker, reference: str) -> None:
    with contextlib.suppress(aiodocker.DockerError):
        await docker.images.delete(reference, force=True)
