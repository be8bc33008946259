"""Gunicorn integration: YAML settings, the Application that reads them, and the JSON access logger."""
