"""The API's routers, one per area, each over the app's ``ServerState``:

- ``page``: ``/`` and ``/static``;
- ``models``: ``/api/models``, ``/api/models/{id}/file``;
- ``predict``: ``/api/predict``, ``/api/preprocess``, ``/api/sample``, ``/api/model``;
- ``explorer``: ``/api/neuron``, ``/api/nudge``;
- ``training``: ``/api/train`` and ``/api/train/{id}[/events]``;
- ``learning``: ``/api/gradient``, ``/api/step``, ``/api/minibatch``, ``/api/landscape``;
- ``classroom``: ``/api/class``, ``/teacher`` and ``/api/teacher[/training|/clear]``.
"""

from __future__ import annotations

from . import classroom, explorer, learning, models, page, predict, training

#: Every router, in the order the app includes them (the OpenAPI schema lists them so).
ROUTERS = (
    page.router,
    models.router,
    predict.router,
    explorer.router,
    training.router,
    learning.router,
    classroom.router,
)
