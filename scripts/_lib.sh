# Shared by scripts/*: set up .venv idempotently and install Debian tools the tests need.
# Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# ensure_venv [EXTRAS]: create .venv with python3 if missing; (re)install the package when pyproject.toml
# changed since the last install or an extra in EXTRAS (comma-separated) is not installed yet. Extras
# installed before are kept (scripts/serve after scripts/test keeps the test tools).
ensure_venv() {
    local stamp installed hash extras
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating $VENV" >&2
        python3 -m venv "$VENV"
    fi
    stamp="$VENV/.trackline-installed"  # "<sha256 of pyproject.toml> <extras,...>"
    installed="$(cat "$stamp" 2>/dev/null || true)"
    hash="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    local previous="${installed#* }" wanted="${1:-}"
    [ "$previous" = "$installed" ] && previous=""  # no extras recorded
    extras="$(printf '%s\n' ${previous//,/ } ${wanted//,/ } | sort -u | paste -sd, -)"
    if [ "${installed%% *}" != "$hash" ] || [ "${installed#* }" != "$extras" ]; then
        echo "==> installing trackline${extras:+[$extras]} into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"
        echo "$hash $extras" > "$stamp"
    fi
}

# ensure_debian_packages PACKAGE ...: apt-get install the Debian packages that are not installed.
# Returns non-zero (after saying why) when they cannot be installed.
ensure_debian_packages() {
    local missing=() package
    command -v dpkg-query >/dev/null 2>&1 || { echo "==> not a Debian system: cannot check $*" >&2; return 1; }
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "==> cannot install ${missing[*]} (needs root)" >&2
        return 1
    fi
    echo "==> installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
