"""trackline's installer: scripts/install and scripts/uninstall, run by Debian's /usr/bin/python3 before any venv
exists, so the standard library only.

cli       the entry point: install|uninstall ARGS, exit statuses
options   both command lines, parsed and checked in one place
layout    the names and paths both share (user, command and its mark, dirs, units, snippets) and --root staging
job       one install run: options, scratch directory, where the files come from
roles     one function per host role: web, worker, edge, loghost
files     idempotent writes, kept configuration (*.dist), rollback copies
system    messages, commands, apt-get
service   the web and worker services' files; venv: the service venv; edge: nginx; rsyslog: log shipping
uninstall what removes it all again
"""
