"""The command lines of install and uninstall: parsed and checked here, once, before anything changes.

A usage error (an unknown option, a missing value) exits with status 2 and the usage. A value that breaks its
rule raises BadValue (status 2) before anything is written: every value that ends up in a generated file (the
wrapper script and the units root runs, nginx's and rsyslog's configuration) is checked here, and the line names
the option and the rule, with the value escaped. An option that does not fit the role raises Failure (status 1).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, NoReturn

from .layout import DEFAULT_LISTEN, DEFAULT_PREFIX, ROLES
from .system import BadValue, Failure

INSTALL_USAGE = """\
scripts/install [--role web|worker] [--prefix /opt/trackline] [--root DIR] [--wheelhouse DIR] [--app SPEC]
                       [--with PKG ...] [--ship-to HOST:PORT TLS]
       scripts/install --role edge --upstream HOST:PORT [--upstream ...] --listen ADDR:PORT [--distrust-clients]
                       [--ship-to HOST:PORT TLS] [--root DIR]
       scripts/install --role loghost --sender NAME:PORT [--sender ...] [--listen ADDR] TLS [--root DIR]
  TLS: --tls-ca FILE --tls-cert FILE --tls-key FILE [--tls-peer NAME], or --plain (docs/log-host.md)"""

INSTALL_ABOUT = """\
Install trackline as a systemd service (see docs/deploy.md), or a host's role in a larger deployment
(docs/edge.md). Safe to run again: a second run changes nothing."""

INSTALL_DETAILS = """\
web: creates the `trackline` system user, the venv (from Debian's /usr/bin/python3), /etc/trackline/*.yaml
(an edited file is kept: the new default goes beside it as *.yaml.dist), the unit in /etc/systemd/system/,
the rules in /etc/logrotate.d/ and the `trackline` command in /usr/local/bin, then runs
`systemctl daemon-reload` when systemd is running.
edge: installs nginx if missing, /etc/nginx/conf.d/trackline.conf and /etc/nginx/trackline/*.conf, checks
them with `nginx -t` (a failed check puts the previous files back), and reloads nginx if it runs.
--ship-to and --role loghost add rsyslog snippets in /etc/rsyslog.d/ (installing Debian's rsyslog and
rsyslog-relp if missing) and the TLS files in /etc/trackline/tls/, check them with `rsyslogd -N1` and
restart rsyslog when they changed; the log host also gets /etc/logrotate.d/trackline-central."""

UNINSTALL_USAGE = "scripts/uninstall [--prefix /opt/trackline] [--root DIR] [--purge]"

UNINSTALL_ABOUT = "Remove what scripts/install put in place (see docs/deploy.md)."

UNINSTALL_DETAILS = """\
Stops and disables the services (web and worker), removes their units, the logrotate rules,
/usr/local/bin/trackline, the venv, the edge's nginx files (reloading nginx) and the rsyslog snippets of
log shipping and the log host (restarting rsyslog). Without --purge the configuration, the logs and the
`trackline` user stay, so that a reinstall picks them up again."""

#: HOST:PORT with a host name or address, or [IPv6]:PORT; nothing that nginx or rsyslog would read as syntax.
ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9][A-Za-z0-9._-]*|\[(?P<v6>[0-9A-Fa-f:.]+)\]):(?P<port>[0-9]{1,5})")
#: One label of a host name (RFC 1123): letters, digits and inner hyphens, 63 at most.
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
HOST_RULE = "a host name (RFC 1123: dot-separated labels of letters, digits and inner hyphens) or an IP address"
#: A path that goes into the wrapper script, the units and the checked configs: no quote, space, `$`, `%`, `;`,
#: backslash or control byte, which sh, systemd, nginx or rsyslog would read as syntax.
SAFE_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")
PATH_RULE = "an absolute path of letters, digits and / . _ - + @"
#: gunicorn's wsgi_app (written into gunicorn.yaml): a dotted module, then ':' and a name or a call, printable.
APP_SPEC = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(?::[ -~]+)?")
#: C0, DEL and C1: never in a value the installer writes or repeats.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


#: A sender's certificate name, which is also its directory in the central tree: DNS labels, nothing else.
SENDER_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")


class Address(NamedTuple):
    """HOST:PORT as given (``text``), its host (an IPv6 address without brackets) and its port."""

    text: str
    host: str
    port: int


def is_host(host: str, v6: bool = False) -> bool:
    """Whether ``host`` is an IPv6 address (``v6``), an IPv4 address, or a host name by RFC 1123."""
    try:
        if v6:
            return bool(ipaddress.IPv6Address(host))
        if all(label.isdigit() for label in host.split(".")):
            return bool(ipaddress.IPv4Address(host))
    except ValueError:
        return False
    return len(host) <= 253 and all(LABEL.fullmatch(label) for label in host.split("."))


def address(option: str, value: str) -> Address:
    """``value`` of ``option`` as an Address, or BadValue naming both."""
    match = ADDRESS.fullmatch(value)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise BadValue(f"{option} must be HOST:PORT (or [IPv6]:PORT), not {value!a}")
    host = match["v6"] or match["host"]
    if not is_host(host, v6=bool(match["v6"])):
        raise BadValue(f"{option} {value!a}: HOST must be {HOST_RULE}")
    return Address(value, host, int(match["port"]))


def safe_path(option: str, value: str) -> str:
    """``value`` of ``option`` normalized, if it is an absolute path of safe characters; else BadValue."""
    if not SAFE_PATH.fullmatch(value):
        raise BadValue(f"{option} must be {PATH_RULE}, not {value!a}")
    if ".." in value.split("/") or not value.strip("/"):
        raise BadValue(f"{option} must name a directory below / without '..' (the installer writes under it), "
                       f"not {value!a}")
    return posixpath.normpath("/" + value.lstrip("/"))


def app_spec(value: str) -> str:
    """--app as given, if it is gunicorn's wsgi_app syntax in printable ASCII; else BadValue."""
    if value and not APP_SPEC.fullmatch(value):
        raise BadValue(f"--app must be MODULE, MODULE:NAME or MODULE:CALL(...) in printable ASCII, not {value!a}")
    return value


def package(value: str) -> str:
    """A --with value (made absolute if it is a local path), if pip cannot take it for an option; else BadValue."""
    if not value or value.startswith("-") or CONTROL.search(value):
        raise BadValue(f"--with must be a directory, a wheel or a requirement (not empty, no leading '-', no"
                       f" control character), not {value!a}")
    return os.path.realpath(value) if os.path.exists(value) else value


def sender(value: str) -> Address:
    """--sender NAME:PORT (the certificate name the log host permits on that port) as an Address, or BadValue."""
    name, _, port = value.rpartition(":")
    if not SENDER_NAME.fullmatch(name) or len(name) > 253 or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadValue(f"--sender must be NAME:PORT with NAME the sender's certificate name (e.g. "
                       f"web-1.example.internal:2514), not {value!a}")
    return Address(value, name, int(port))


class Tls(NamedTuple):
    """--tls-ca, --tls-cert and --tls-key: absolute paths of PEM files that exist."""

    ca: str
    cert: str
    key: str


#: Each TLS option and what its PEM file must hold.
TLS_FILES = {"--tls-ca": "CERTIFICATE-----", "--tls-cert": "CERTIFICATE-----", "--tls-key": "PRIVATE KEY-----"}


def tls_files(ca: str, cert: str, key: str) -> Tls:
    """The three PEM files, each checked to exist and to hold what its option names, or Failure naming it."""
    paths = dict(zip(TLS_FILES, (ca, cert, key), strict=True))
    for option, path in paths.items():
        try:
            text = Path(path).read_text(errors="replace")
        except OSError as error:
            raise Failure(f"{option} {path!a}: {error.strerror}") from None
        if "-----BEGIN " not in text or TLS_FILES[option] not in text:
            raise Failure(f"{option} {path!a}: not a PEM file with a {TLS_FILES[option].strip('-').lower()}")
    return Tls(*(os.path.realpath(path) for path in paths.values()))


@dataclass(frozen=True)
class InstallOptions:
    """scripts/install's options, checked: each role gets only the options it takes."""

    role: str = "web"
    prefix: str = DEFAULT_PREFIX
    root: str = ""  # absolute, or "" for this host
    wheelhouse: str = ""  # absolute, or "" for the checkout's source
    app: str = ""
    packages: tuple[str, ...] = ()  # --with, local paths made absolute
    upstreams: tuple[Address, ...] = ()
    listen: Address | None = None  # edge: where nginx listens; loghost: the RELP address (port 0; 127.0.0.1)
    distrust_clients: bool = False
    ship_to: Address | None = None
    senders: tuple[Address, ...] = ()  # loghost: each sender's certificate name (host) and RELP port
    tls: Tls | None = None  # --ship-to or loghost: None with --plain
    tls_peer: str = ""  # --ship-to: the name the log host's certificate must carry (default: its host)

    @property
    def venv(self) -> str:
        return f"{self.prefix}/venv"


@dataclass(frozen=True)
class UninstallOptions:
    """scripts/uninstall's options."""

    prefix: str = DEFAULT_PREFIX
    root: str = ""
    purge: bool = False


class _Parser(argparse.ArgumentParser):
    """argparse with our error format: ``install: MESSAGE``, then the usage, exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}\n")
        self.print_usage(sys.stderr)
        sys.exit(2)


def _parser(prog: str, usage: str, about: str, details: str, prefix: str) -> _Parser:
    parser = _Parser(prog=prog, usage=usage, description=about, epilog=details, allow_abbrev=False,
                     formatter_class=lambda prog: argparse.RawTextHelpFormatter(prog, max_help_position=22))
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, metavar="DIR", help=f"{prefix}; default {DEFAULT_PREFIX}")
    return parser


def _directory(value: str) -> str:
    """An option's directory, made absolute (it need not exist); "" is refused."""
    if not value:
        raise argparse.ArgumentTypeError("needs a directory")
    return os.path.realpath(value)


def install_parser() -> argparse.ArgumentParser:
    """scripts/install's options; ``--help`` is the usage the docs point to."""
    parser = _parser("install", INSTALL_USAGE, INSTALL_ABOUT, INSTALL_DETAILS, "where the venv goes (DIR/venv)")
    add = parser.add_argument
    add("--role", default="web", metavar="ROLE",
        help="web (default): the trackline service; worker: the Celery worker (trackline-worker.service,\n"
             "trackline[celery]; docs/celery.md); edge: nginx in front of several web hosts (docs/edge.md);\n"
             "loghost: the central log host (docs/log-host.md)")
    add("--root", type=_directory, default=None, metavar="DIR",
        help="install into the staging tree DIR (packaging, tests): no user, no systemctl, no reload")
    add("--wheelhouse", type=_directory, default=None, metavar="DIR",
        help="install trackline and its dependencies from the wheels in DIR, offline (--no-index)")
    add("--app", default="", metavar="SPEC",
        help="(web) serve your app (gunicorn's wsgi_app syntax, e.g. 'acme_orders:create_app()'):\n"
             "written into /etc/trackline/gunicorn.yaml when it is new or the unedited default")
    add("--with", dest="packages", action="append", default=[], metavar="PKG",
        help="(web, worker) also install PKG into the venv: a source directory, a wheel or a pip\n"
             "requirement (repeatable); rerun with a new version, then `systemctl reload trackline`")
    add("--upstream", dest="upstreams", action="append", default=[], metavar="H:P",
        help="(edge) a trackline host nginx proxies to; give one per host")
    add("--listen", default="", metavar="ADDR:PORT",
        help="(edge) where nginx listens for clients, e.g. 0.0.0.0:80; (loghost) the address (no port)\n"
             f"to receive on, default {DEFAULT_LISTEN}")
    add("--distrust-clients", action="store_true",
        help="(edge) replace every incoming X-Tracking-ID with the edge's own (internet-facing edge)")
    add("--ship-to", default="", metavar="H:P",
        help="(web, worker, edge) ship the JSON logs to the log host H (RELP port P) with rsyslog")
    add("--sender", dest="senders", action="append", default=[], metavar="NAME:PORT",
        help="(loghost) take the lines of the sender whose certificate name is NAME on PORT, into\n"
             "/var/log/trackline-central/NAME/ (repeatable: one port per sender)")
    add("--tls-ca", default="", metavar="FILE", help="(shipping, loghost) the CA that signs every certificate")
    add("--tls-cert", default="", metavar="FILE", help="(shipping, loghost) this host's certificate (PEM)")
    add("--tls-key", default="", metavar="FILE", help="(shipping, loghost) its private key (PEM)")
    add("--tls-peer", default="", metavar="NAME",
        help="(shipping) the name the log host's certificate must carry; default the --ship-to host")
    add("--plain", action="store_true",
        help="(shipping, loghost) RELP without TLS: anyone who reaches the port can write as a sender")
    return parser


def uninstall_parser() -> argparse.ArgumentParser:
    """scripts/uninstall's options."""
    parser = _parser("uninstall", UNINSTALL_USAGE, UNINSTALL_ABOUT, UNINSTALL_DETAILS,
                     "the prefix given to scripts/install")
    parser.add_argument("--root", type=_directory, default=None, metavar="DIR",
                        help="remove from the staging tree DIR instead of this host (no systemctl, no userdel)")
    parser.add_argument("--purge", action="store_true",
                        help="also delete /etc/trackline (your edited YAML files), /var/log/trackline and the user")
    return parser


def _is_root(euid: int | None) -> bool:
    return (os.geteuid() if euid is None else euid) == 0


def parse_install(argv: list[str], euid: int | None = None) -> InstallOptions:
    """scripts/install's ``argv`` as checked options (``euid``: the user to check for, default ours)."""
    args = install_parser().parse_args(argv)
    prefix = safe_path("--prefix", args.prefix)
    if args.wheelhouse and not os.path.isdir(args.wheelhouse):
        raise Failure(f"--wheelhouse {args.wheelhouse!a}: no such directory")
    root, wheelhouse = safe_path("--root", args.root) if args.root else "", args.wheelhouse or ""
    if not root and not _is_root(euid):
        raise Failure("run as root (or stage into a tree with --root DIR)")
    role, listen, ship_to = args.role, args.listen, args.ship_to
    if role not in ROLES:
        raise Failure(f"unknown --role {role!a} (web, worker, edge or loghost)")
    if role == "loghost" and ship_to:
        raise Failure("--ship-to is for the hosts that send (web, worker, edge), not the log host")
    if role in ("web", "worker") and listen:
        raise Failure("--listen is for --role edge or loghost")
    edge_only = args.upstreams or args.distrust_clients
    if role == "web" and edge_only:
        raise Failure("--upstream, --listen and --distrust-clients are options of --role edge")
    if role == "worker" and (edge_only or args.app):
        raise Failure("--app is an option of --role web; --upstream, --listen and --distrust-clients of --role edge")
    if role == "loghost" and (edge_only or args.app):
        raise Failure("--app is an option of --role web; --upstream and --distrust-clients of --role edge")
    if role == "edge":
        if wheelhouse or prefix != DEFAULT_PREFIX or args.app or args.packages:
            raise Failure("--prefix, --wheelhouse, --app and --with are options of --role web")
        if not args.upstreams:
            raise Failure("--role edge needs at least one --upstream HOST:PORT (a trackline host)")
        if not listen:
            raise Failure("--role edge needs --listen ADDR:PORT (where nginx takes clients, e.g. 0.0.0.0:80)")
    upstreams = tuple(address("--upstream", upstream) for upstream in args.upstreams)
    listening = (address("--listen", listen) if role == "edge" else
                 _listen_address(listen or DEFAULT_LISTEN) if role == "loghost" else None)
    shipping_to = address("--ship-to", ship_to) if ship_to else None
    return InstallOptions(
        role=role, prefix=prefix, root=root, wheelhouse=wheelhouse, app=app_spec(args.app),
        packages=tuple(map(package, args.packages)),
        upstreams=upstreams, listen=listening, distrust_clients=args.distrust_clients, ship_to=shipping_to,
        **_shipping(args, role),
    )


def _listen_address(value: str) -> Address:
    """The log host's --listen: an address without a port (each --sender has its own)."""
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if not is_host(host, v6=":" in host):
        raise BadValue(f"--listen for --role loghost is an address without a port (each --sender has its port),"
                       f" not {value!a}")
    return Address(value, host, 0)


def _shipping(args: argparse.Namespace, role: str) -> dict[str, object]:
    """The TLS and sender options, checked against the role: a sender (--ship-to) or the log host needs the three
    TLS files or --plain; nothing else takes them."""
    given = [option for option, value in (("--tls-ca", args.tls_ca), ("--tls-cert", args.tls_cert),
                                          ("--tls-key", args.tls_key)) if value]
    ships, receives = bool(args.ship_to), role == "loghost"
    if args.senders and not receives:
        raise Failure("--sender is an option of --role loghost")
    if args.tls_peer and not ships:
        raise Failure("--tls-peer is for a host that ships (--ship-to)")
    if args.tls_peer and not SENDER_NAME.fullmatch(args.tls_peer):
        raise BadValue(f"--tls-peer must be a host name (the log host's certificate name), not {args.tls_peer!a}")
    if not (ships or receives):
        if given or args.plain:
            raise Failure("--tls-ca, --tls-cert, --tls-key and --plain go with --ship-to or --role loghost")
        return {}
    if receives and not args.senders:
        raise Failure("--role loghost needs --sender NAME:PORT for each host that ships to it")
    if args.plain and (given or args.tls_peer):
        raise Failure("--plain is RELP without TLS: give it or the --tls-* files, not both")
    if not args.plain and len(given) < 3:
        raise Failure("log shipping needs --tls-ca FILE --tls-cert FILE --tls-key FILE (docs/log-host.md), "
                      "or --plain for RELP without TLS on a network that is yours")
    senders = tuple(sender(value) for value in args.senders)
    ports = [s.port for s in senders]
    if len(set(ports)) != len(ports) or len({s.host for s in senders}) != len(senders):
        raise BadValue("each --sender needs a name and a port of its own")
    return {"senders": senders, "tls": None if args.plain else tls_files(args.tls_ca, args.tls_cert, args.tls_key),
            "tls_peer": args.tls_peer}


def parse_uninstall(argv: list[str], euid: int | None = None) -> UninstallOptions:
    """scripts/uninstall's ``argv`` as checked options."""
    args = uninstall_parser().parse_args(argv)
    prefix = safe_path("--prefix", args.prefix)
    root = args.root or ""
    if not root and not _is_root(euid):
        raise Failure("run as root (or give --root DIR)")
    return UninstallOptions(prefix=prefix, root=root, purge=args.purge)
