"""The Celery worker run the trackline way (``trackline worker``): worker.yaml, logging.yaml, worker.log.

Importing this package needs no Celery: ``trackline.worker.settings`` imports it only to check an app.
"""
