"""A kubeconfig's embedded key and certificates never stay on disk: not while the client runs, not after a kill -9.

No cluster: a real TLS server of this test that requires a client certificate signed by its CA, reached through
both of the client's transports (aiohttp on the loop, urllib3 for threads) with a kubeconfig whose data is
embedded, as `make cluster-up`'s, microk8s' and kind's are.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import http.server
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.settings import KubernetesSettings


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _issue(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, **kw: bool) -> tuple:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if kw.get("server"):
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _pem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pem:
    return Pem(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


@dataclass(frozen=True)
class Tls:
    url: str
    ca: Pem
    client: Pem
    seen: list[str]  # the client certificates' common names, per request


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    ca = _issue("odin-test-ca", None)
    server, client = _issue("127.0.0.1", ca, server=True), _issue("odin-test-user", ca)
    d = tmp_path_factory.mktemp("tls")
    for name, pem in (("ca", _pem(*ca)), ("server", _pem(*server))):
        (d / f"{name}.crt").write_bytes(pem.cert)
        (d / f"{name}.key").write_bytes(pem.key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(d / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED  # as an API server with client-certificate auth
    ctx.load_cert_chain(str(d / "server.crt"), str(d / "server.key"))
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            seen.append(dict(x[0] for x in peer["subject"])["commonName"])
            body = json.dumps({"gitVersion": "v-test"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield Tls(f"https://127.0.0.1:{httpd.server_address[1]}", _pem(*ca), _pem(*client), seen)
    httpd.shutdown()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def embedded_kubeconfig(path: Path, tls: Tls, *, token: str = "") -> Path:
    user = f"token: {token}, " if token else ""
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters:
        - name: c
          cluster: {{server: "{tls.url}", certificate-authority-data: {_b64(tls.ca.cert)}}}
        users:
        - name: u
          user: {{{user}client-certificate-data: {_b64(tls.client.cert)}, client-key-data: {_b64(tls.client.key)}}}
        contexts:
        - name: x
          context: {{cluster: c, user: u}}
        current-context: x
        """)
    )
    return path


async def test_an_embedded_key_reaches_the_server_from_memory_on_both_transports(tls_server: Tls, tmp_path: Path):
    kubeconfig = embedded_kubeconfig(tmp_path / "kubeconfig", tls_server)
    api = load_api_client(KubernetesSettings(kubeconfig=str(kubeconfig)))
    cfg = api.configuration
    for path, data in ((cfg.ssl_ca_cert, tls_server.ca.cert), (cfg.cert_file, tls_server.client.cert)):
        assert path.startswith("/proc/self/fd/"), path
        assert Path(path).read_bytes() == data
    assert Path(cfg.key_file).read_bytes() == tls_server.client.key
    assert os.readlink(cfg.key_file).startswith("/memfd:"), "memory only, not a file of any file system"
    client = KubeClient(api, KubernetesSettings(kubeconfig=str(kubeconfig), qps=0))
    before = len(tls_server.seen)
    assert (await client.request("get", "/version"))["gitVersion"] == "v-test"  # aiohttp, on the loop
    assert client.request_sync("get", "/version")["gitVersion"] == "v-test"  # urllib3, as threads call it
    assert tls_server.seen[before:] == ["odin-test-user", "odin-test-user"], "the client certificate was presented"
    again = load_api_client(KubernetesSettings(kubeconfig=str(kubeconfig)))
    assert again.configuration.key_file == cfg.key_file, "one memory file per content, however often it is loaded"


async def test_a_tokens_refresh_hook_keeps_the_memory_files(tls_server: Tls, tmp_path: Path) -> None:
    """With a token, the loader's refresh hook sets its own paths on the Configuration again at every call."""
    kubeconfig = embedded_kubeconfig(tmp_path / "kubeconfig", tls_server, token="t0ken")
    settings = KubernetesSettings(kubeconfig=str(kubeconfig), qps=0)
    api = load_api_client(settings)
    cfg = api.configuration
    paths = (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file)
    for _ in range(3):
        assert cfg.get_api_key_with_prefix("BearerToken") == "Bearer t0ken"  # runs the hook
        assert (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file) == paths
    assert Path(cfg.key_file).read_bytes() == tls_server.client.key
    client = KubeClient(api, settings)
    assert (await client.request("get", "/version"))["gitVersion"] == "v-test"
    assert client.request_sync("get", "/version")["gitVersion"] == "v-test"


def test_loads_at_once_in_threads_each_get_files_that_exist(tls_server: Tls, tmp_path: Path) -> None:
    """The loader caches its files by content across loads: one load must not be handed a file another removes."""
    kubeconfig = embedded_kubeconfig(tmp_path / "kubeconfig", tls_server)
    settings = KubernetesSettings(kubeconfig=str(kubeconfig))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        configs = [f.result().configuration for f in [pool.submit(load_api_client, settings) for _ in range(32)]]
    for cfg in configs:
        for path in (cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file):
            assert path.startswith("/proc/self/fd/") and Path(path).is_file(), path


LOAD_AND_DIE = """
import os, signal, sys
from pathlib import Path
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.executors.kubernetes.transport import ssl_context
from odin_core.settings import KubernetesSettings
settings = KubernetesSettings(kubeconfig=sys.argv[1], qps=0)
api = load_api_client(settings)
ssl_context(api.configuration)  # the TLS context is made from the key, as the executor makes it
print(KubeClient(api, settings).request_sync("get", "/version")["gitVersion"], flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no finally: what an OOM kill or kill -9 leaves
"""


def test_a_killed_process_leaves_no_copy_of_the_key(tls_server: Tls, tmp_path: Path) -> None:
    kubeconfig = embedded_kubeconfig(tmp_path / "kubeconfig", tls_server)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_DIE, str(kubeconfig)], env=env, capture_output=True, text=True
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.strip() == "v-test", done.stderr
    left = list(tmp.rglob("*"))
    assert left == [], f"left in the temp directory: {left}"


def test_files_the_kubeconfig_names_are_used_in_place_and_kept(tls_server: Tls, tmp_path: Path) -> None:
    files = {"ca.crt": tls_server.ca.cert, "user.crt": tls_server.client.cert, "user.key": tls_server.client.key}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters: [{{name: c, cluster: {{server: "{tls_server.url}", certificate-authority: {tmp_path}/ca.crt}}}}]
        users: [{{name: u, user: {{client-certificate: {tmp_path}/user.crt, client-key: {tmp_path}/user.key}}}}]
        contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
        current-context: x
        """)
    )
    settings = KubernetesSettings(kubeconfig=str(kubeconfig), qps=0)
    api = load_api_client(settings)
    assert (api.configuration.ssl_ca_cert, api.configuration.cert_file, api.configuration.key_file) == tuple(
        str(tmp_path / n) for n in files
    )
    assert KubeClient(api, settings).request_sync("get", "/version")["gitVersion"] == "v-test"
    assert {n: (tmp_path / n).read_bytes() for n in files} == files, "the user's files are theirs: kept as they were"
