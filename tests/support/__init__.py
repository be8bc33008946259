"""What the tests share, one copy each: import it as ``from support.<module> import ...`` (``tests/`` is on
``sys.path``: pyproject.toml's ``[tool.pytest.ini_options] pythonpath``).

- ``paths``: the checkout's places (REPO, CONF, the ``trackline`` command, scripts/install and uninstall).
- ``logs``: reading JSON log files and the log contract's checks (``read_json_lines``, ``assert_contract``...).
- ``conf``: editing a copy of a YAML config file (``edit_yaml``).
- ``processes``: free loopback ports, stopping a child by its PID, a Python script in a process of its own.
- ``waiting``: ``wait_until``, the one way a test polls for something.
- ``http``: a request through urllib (``Response``) and raw bytes over a socket (``RawResponse``).
- ``load``: the one threaded load generator (``Load``) and ``concurrently`` for a burst of requests.
- ``server``: a real ``trackline serve`` on an ephemeral loopback port (``Server``, ``new_server``).
- ``flask_client``: Flask's test client as a WSGI server reads responses.
- ``requirements``: a tool the test needs, installed from Debian or else a skip (a failure in CI).
- ``staging``: scripts/install runs, installed-tree snapshots, wheelhouses, booting the systemd sandbox.
- ``sandbox``: systemd as PID 1 on an overlay of ``/`` (never the real root).
- ``edge``: Debian's nginx running the edge config that ``scripts/install --role edge`` stages.
- ``celery_worker``: a real ``redis-server`` and a real ``trackline worker``.
- ``hostile``: the hostile header and query corpus that the app and the edge are both tested with.
- ``relay``: two services, A's ``/api/relay`` calling B.
"""
