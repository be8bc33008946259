"""Stand-ins for the programs the installer runs, for its unit tests: no real venv, pip, nginx or rsyslogd."""

#: Stands for /usr/bin/python3 and, copied into the venv by `-m venv`, for the venv's python with its pip, which
#: "installs" by writing bin/trackline with the staging path in its #! line, as pip does. Every call is logged.
FAKE_PYTHON = r"""#!/bin/sh
echo "$0 $*" >> "$FAKE_LOG"
case "$1 $2" in
    "-c import sys; print(sys.version)") echo "3.11.2 (main) [fake]" ;;
    "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && echo "command = $0 -m venv $3" > "$3/pyvenv.cfg" ;;
    "-m pip") bin=$(dirname "$0"); printf '#!%s/python\n' "$bin" > "$bin/trackline"; chmod 755 "$bin/trackline" ;;
esac
"""
