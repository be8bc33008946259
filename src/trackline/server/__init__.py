"""Gunicorn integration: YAML settings, the Application that reads them, the JSON access logger, and
signals held while a worker boots."""
