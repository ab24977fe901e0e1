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

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

_FILES = ("ssl_ca_cert", "cert_file", "key_file")  # the Configuration's attributes that the loader may write
_in_memory: dict[bytes, str] = {}  # content -> /proc/self/fd/N of the memory-only file holding it
_lock = threading.Lock()


def load_kube_config(path: str | None, context: str | None, cfg: k8s_client.Configuration) -> None:
    """``kubernetes.config.load_kube_config`` into ``cfg``, leaving no file of the kubeconfig's data behind."""
    if not hasattr(os, "memfd_create"):
        k8s_config.load_kube_config(path, context=context, client_configuration=cfg)
        return
    scratch = os.path.realpath(tempfile.mkdtemp(prefix="odin-kubeconfig-"))
    kept = False  # a file the loader wrote that could not be moved: left to the loader's clean-up at exit
    try:
        k8s_config.load_kube_config(path, context=context, client_configuration=cfg, temp_file_path=scratch)
        for attr in _FILES:
            written = getattr(cfg, attr, None)
            if written and os.path.dirname(os.path.realpath(written)) == scratch:
                with open(written, "rb") as f:
                    moved = memory_file(f.read())
                if moved is None:
                    kept = True
                else:
                    setattr(cfg, attr, moved)
    finally:
        if not kept:
            shutil.rmtree(scratch, ignore_errors=True)


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
