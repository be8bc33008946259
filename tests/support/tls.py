"""A private CA and host certificates for the tests, made with openssl as docs/log-host.md shows an operator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from installer.options import Tls
from support.requirements import unavailable


def _openssl(*args: str | Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


class Ca:
    """A CA in ``directory`` (its name is ``name``) that signs certificates for host names."""

    def __init__(self, directory: Path, name: str = "trackline test CA") -> None:
        if not shutil.which("openssl"):
            unavailable("needs openssl to make the test certificates (Debian's openssl)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = self.dir / "ca.pem", self.dir / "ca-key.pem"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", f"/CN={name}", "-keyout", self.key, "-out", self.cert,
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name: str) -> Tls:
        """A key and a certificate for host ``name`` (subjectAltName DNS:name), with this CA as ``ca``."""
        key, csr, cert = (self.dir / f"{name}{suffix}" for suffix in ("-key.pem", ".csr", ".pem"))
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", key, "-out", csr)
        extensions = self.dir / f"{name}.ext"
        extensions.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n"
                              "basicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial", "-days", "2",
                 "-extfile", extensions, "-out", cert)
        return Tls(str(self.cert), str(cert), str(key))
