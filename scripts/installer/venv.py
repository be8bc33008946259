"""The service venv: made from Debian's python3, trackline (and the --with packages) installed into it by pip,
and nothing reinstalled while a stamp of the sources in the venv says they are unchanged."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from .files import write
from .job import Job
from .system import Failure, apt_install, run, say, succeeds

STAMP = ".trackline-source"  # in the venv: the hash of what was installed into it
#: Not part of a source tree's stamp (`find -path` patterns): build output, bytecode, version control.
NOT_SOURCE = ("*/__pycache__/*", "*.egg-info/*", "./build/*", "./.git/*")


def ensure_python_venv(python: str) -> None:
    """``python`` with the venv module and ensurepip (Debian's python3-venv, installed if missing and root)."""
    if not os.access(python, os.X_OK):
        raise Failure(f"{python} is missing (apt-get install python3)")
    if succeeds([python, "-c", "import ensurepip, venv"]):
        return
    if os.geteuid() != 0:
        raise Failure(f"{python} cannot make venvs: apt-get install python3-venv")
    say("installing python3-venv")
    apt_install("python3-venv")


def sha256sum(path: Path, name: str) -> str:
    """A `sha256sum NAME` line for the file ``path``."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    if "\\" in name or "\n" in name:
        return "\\" + digest + "  " + name.replace("\\", "\\\\").replace("\n", "\\n") + "\n"
    return f"{digest}  {name}\n"


def _regular(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


def tree_stamp(top: Path, *starts: str) -> str:
    """The hashes of the files under ``top``'s ``starts``, build output left out, one `sha256sum` line each in
    byte order of their names (the format the bash installer wrote, so that its stamps stay valid)."""
    names = []
    for start in starts:
        if _regular(str(top / start)):
            names.append(start)
        for directory, _, files in os.walk(top / start):
            inner = os.path.relpath(directory, top / start)
            prefix = start if inner == "." else f"{start}/{inner}"
            names += [f"{prefix}/{file}" for file in files if _regular(os.path.join(directory, file))]
    names = [name for name in names if not any(fnmatch.fnmatchcase(name, pattern) for pattern in NOT_SOURCE)]
    return "".join(sha256sum(top / name, name) for name in sorted(names, key=os.fsencode))


def source_stamp(job: Job, extras: str) -> str:
    """A hash of what would be installed (and of the python), so that an unchanged source skips pip."""
    options = job.options
    version = subprocess.run([job.python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True)
    text = version.stdout
    if options.wheelhouse:
        wheels = sorted(Path(options.wheelhouse).glob("*.whl"), key=lambda path: os.fsencode(path.name))
        if not wheels:
            raise Failure(f"--wheelhouse {options.wheelhouse}: no wheels (*.whl) in it")
        text += "".join(sha256sum(wheel, wheel.name) for wheel in wheels)
    else:
        text += tree_stamp(job.repo, "pyproject.toml", "src")
    for package in options.packages:
        text += f"--with {package}\n"
        if os.path.isdir(package):
            text += tree_stamp(Path(package), ".")
        elif os.path.isfile(package):
            text += sha256sum(Path(package), package)
    text += f"extras: {extras}\n"
    return hashlib.sha256(text.encode()).hexdigest()


def copy_source(repo: Path, dest: Path) -> Path:
    """The package's source (pyproject.toml, src, README.md) copied to ``dest``, so that pip's build leaves the
    checkout as it was (no build/ or egg-info in it)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    shutil.copy(repo / "pyproject.toml", dest)
    shutil.copytree(repo / "src", dest / "src", symlinks=True,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    if (repo / "README.md").is_file():
        shutil.copy(repo / "README.md", dest)
    return dest


def with_sources(packages: tuple[str, ...], tmp: Path) -> list[str]:
    """The --with packages as pip takes them: a directory is copied first (without build/ and egg-info), so
    that the team's checkout, like ours, is left as it was."""
    sources = []
    for number, package in enumerate(packages, start=1):
        if not os.path.isdir(package):
            sources.append(package)
            continue
        copy = tmp / f"with-{number}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(package, copy, symlinks=True)
        for built in [copy / "build", *copy.glob("*.egg-info")]:
            shutil.rmtree(built, ignore_errors=True)
        sources.append(str(copy))
    return sources


def pip_command(venv_dir: Path, requirement: str, packages: list[str], wheelhouse: str) -> list[str]:
    """The venv's pip installing ``requirement`` and ``packages`` (offline from ``wheelhouse`` if given)."""
    command = [str(venv_dir / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-cache-dir", "--force-reinstall"]
    if wheelhouse:
        command += ["--no-index", "--find-links", wheelhouse]
    return [*command, requirement, *packages]


def relocate(venv_dir: Path, venv: str) -> None:
    """Point the scripts' #! lines, the activate scripts and pyvenv.cfg at ``venv``, where the staged venv will
    be, instead of ``venv_dir``, where pip wrote it."""
    staged, final = str(venv_dir).encode(), venv.encode()
    files = [venv_dir / "pyvenv.cfg"]
    for directory, _, names in os.walk(venv_dir / "bin"):
        files += [Path(directory, name) for name in names]
    for path in files:
        if path.is_file() and not path.is_symlink() and staged in (content := path.read_bytes()):
            path.write_bytes(content.replace(staged, final))


def ensure_venv(job: Job, extras: str = "") -> None:
    """PREFIX/venv with trackline[requests EXTRAS] (requests: the demo API's /api/relay) and the --with
    packages; pip runs only when the sources' stamp differs from the one the venv holds."""
    options, venv = job.options, job.options.venv
    venv_dir = job.host.path(venv)
    ensure_python_venv(job.python)
    want = source_stamp(job, extras)
    python, stamp = venv_dir / "bin/python", venv_dir / STAMP
    if os.access(python, os.X_OK) and stamp.is_file() and stamp.read_bytes().rstrip(b"\n") == want.encode():
        return
    if not os.access(python, os.X_OK):
        run([job.python, "-m", "venv", str(venv_dir)])
        say(f"created venv {venv} from {job.python}")
    source = "trackline" if options.wheelhouse else str(copy_source(job.repo, job.tmp / "source"))
    packages = with_sources(options.packages, job.tmp)
    run(pip_command(venv_dir, f"{source}[requests{extras}]", packages, options.wheelhouse))
    if job.host.staged:
        relocate(venv_dir, venv)
    write(stamp, f"{want}\n".encode(), 0o644)
    withs = f" and {' '.join(options.packages)}" if options.packages else ""
    say(f"installed trackline{withs} into {venv}")
