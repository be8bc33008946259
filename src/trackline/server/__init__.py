"""Gunicorn integration: YAML settings, the Application that reads them, the JSON access logger, signals held
while a worker boots, and tracking IDs on what gunicorn answers and logs itself."""
