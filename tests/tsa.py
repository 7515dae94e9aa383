"""A real RFC 3161 time-stamp authority on 127.0.0.1 for tests: OpenSSL's `openssl ts -reply`
behind a small HTTP server, with its own root and a time-stamping certificate; and one that is
down, answering 503."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONFIG = """
[ req ]
distinguished_name = dn
[ dn ]
[ root ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ stamper ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ tsa ]
default_tsa = local
[ local ]
serial = {folder}/serial
signer_cert = {folder}/tsa.pem
certs = {folder}/root.pem
signer_key = {folder}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ess_cert_id_alg = sha256
"""


def available() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*arguments: str, folder: Path) -> None:
    subprocess.run(["openssl", *arguments], cwd=folder, check=True, capture_output=True)


@contextmanager
def time_stamp_authority() -> Iterator[tuple[str, Path]]:
    """(its URL, its root certificate) while the block runs."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "tsa.cnf").write_text(CONFIG.format(folder=folder))
        (folder / "serial").write_text("01\n")
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root.key", folder=folder)
        _openssl(
            "req",
            "-new",
            "-x509",
            "-key",
            "root.key",
            "-subj",
            "/CN=test TSA root",
            "-days",
            "2",
            "-config",
            "tsa.cnf",
            "-extensions",
            "root",
            "-out",
            "root.pem",
            folder=folder,
        )
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "tsa.key", folder=folder)
        _openssl(
            "req",
            "-new",
            "-key",
            "tsa.key",
            "-subj",
            "/CN=test TSA",
            "-config",
            "tsa.cnf",
            "-out",
            "tsa.csr",
            folder=folder,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "tsa.cnf",
            "-extensions",
            "stamper",
            "-out",
            "tsa.pem",
            folder=folder,
        )

        one_at_a_time = threading.Lock()  # `openssl ts` reads and writes its serial file unlocked

        class Stamper(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("content-length", 0)))
                with one_at_a_time, tempfile.TemporaryDirectory(dir=folder) as work:
                    (Path(work) / "q.tsq").write_bytes(query)
                    _openssl(
                        "ts",
                        "-reply",
                        "-config",
                        "tsa.cnf",
                        "-queryfile",
                        f"{work}/q.tsq",
                        "-out",
                        f"{work}/r.tsr",
                        folder=folder,
                    )
                    reply = (Path(work) / "r.tsr").read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: object) -> None:
                return

        with serving(Stamper) as url:
            yield url, folder / "root.pem"


@contextmanager
def refusing_authority() -> Iterator[str]:
    """An authority down for maintenance behind its web server: every request answered 503."""

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_error(503)

        def log_message(self, *_: object) -> None:
            return

    with serving(Unavailable) as url:
        yield f"{url}tsr"


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering with ``handler`` while the block runs: its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
