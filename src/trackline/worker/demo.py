"""Deprecated: the demo's Celery app moved to ``trackline.demo.tasks:app`` (worker.yaml's ``celery_app``).

This path keeps working for one release, so that an edited worker.yaml naming it still runs.
"""

import warnings

from trackline.demo.tasks import app, run

warnings.warn("trackline.worker.demo is deprecated: use trackline.demo.tasks (worker.yaml's celery_app: "
              "trackline.demo.tasks:app)", DeprecationWarning, stacklevel=2)

__all__ = ["app", "run"]
