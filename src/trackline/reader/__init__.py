"""Offline tools an operator runs over a log directory or a log host's tree (``trackline trace``).

They read the JSON lines the runtime writes, and import nothing of the runtime's logging, server or Flask.
"""
