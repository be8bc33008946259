"""Gunicorn integration: YAML settings, the Application that reads them, the JSON access logger, signals held
while a worker boots, and the JSON answers to requests gunicorn rejects itself."""
