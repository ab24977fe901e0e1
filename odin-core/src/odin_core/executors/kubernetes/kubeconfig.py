"""A kubeconfig's embedded certificates and key, held in memory rather than in files of the temp directory.

The official loader writes ``certificate-authority-data``, ``client-certificate-data`` and ``client-key-data``
to files under the temp directory and removes them at interpreter exit only, so a process that is killed
(``kill -9``, an OOM kill, SIGTERM without a handler) leaves a copy of its client key behind: this machine's
``/tmp`` held over a thousand such files after a day of tests. Here the loader writes them into a directory
of their own; each is copied into a memory-only file (``memfd``, close-on-exec: no task or child process
inherits it) that the clients open as ``/proc/self/fd/N``, and the directory is removed before the load
returns. Files the kubeconfig names by path (``client-key: /path``) are used where they are, untouched.
Without ``memfd_create`` or ``/proc`` (not Linux) the loader's own files are used, as before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

_FILES = ("ssl_ca_cert", "cert_file", "key_file")  # the Configuration's attributes that the loader may write
_in_memory: dict[bytes, str] = {}  # content -> /proc/self/fd/N of the memory-only file holding it
_lock = threading.RLock()


def load_kube_config(path: str | None, context: str | None, cfg: k8s_client.Configuration) -> None:
    """``kubernetes.config.load_kube_config`` into ``cfg``, leaving no file of the kubeconfig's data behind."""
    if not hasattr(os, "memfd_create"):
        k8s_config.load_kube_config(path, context=context, client_configuration=cfg)
        return
    # One load at a time: the loader caches its files by content across loads, so a load running beside
    # another could be handed a file that the other is about to remove.
    with _lock:
        scratch = os.path.realpath(tempfile.mkdtemp(prefix="odin-kubeconfig-"))
        try:
            k8s_config.load_kube_config(path, context=context, client_configuration=cfg, temp_file_path=scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        _Moved(scratch).apply(cfg)


class _Moved:
    """The files one load wrote, moved to memory. A token's refresh hook sets the loader's paths on the
    Configuration again at every call (and may write new files, an exec plugin's certificate): they are
    moved again after it."""

    def __init__(self, scratch: str) -> None:
        self.scratch = scratch
        self.moved: dict[str, str] = {}  # a file the loader wrote -> the memory file holding its content
        self._hook: Callable[[k8s_client.Configuration], None] = lambda _cfg: None  # the loader's latest

    def apply(self, cfg: k8s_client.Configuration) -> None:
        kept = False  # a file that could not be moved: left to the loader's own clean-up at exit
        for attr in _FILES:
            written = getattr(cfg, attr, None)
            if not written:
                continue
            if written in self.moved:
                setattr(cfg, attr, self.moved[written])
            elif os.path.dirname(os.path.realpath(written)) == self.scratch:
                with open(written, "rb") as f:
                    memory = memory_file(f.read())
                if memory is None:
                    kept = True
                else:
                    self.moved[written] = memory
                    setattr(cfg, attr, memory)
        if not kept:
            shutil.rmtree(self.scratch, ignore_errors=True)
        hook = cfg.refresh_api_key_hook
        if hook is not None and getattr(hook, "__self__", None) is not self:
            self._hook = hook
            cfg.refresh_api_key_hook = self.refreshed

    def refreshed(self, cfg: k8s_client.Configuration) -> None:
        with _lock:
            self._hook(cfg)  # the loader's: it sets its paths, and a new hook, on ``cfg`` again
            self.apply(cfg)


def memory_file(content: bytes) -> str | None:
    """A path naming a memory-only file with ``content`` for the life of this process (one per content); None
    where such a file cannot be made or opened by path (no ``/proc``)."""
    with _lock:
        path = _in_memory.get(content)
        if path is None:
            try:
                fd = os.memfd_create("odin-kubeconfig", os.MFD_CLOEXEC)
            except OSError:
                return None
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            path = f"/proc/self/fd/{fd}"
            try:
                with open(path, "rb") as f:
                    readable = f.read() == content
            except OSError:
                readable = False
            if not readable:
                os.close(fd)
                return None
            _in_memory[content] = path
        return path
