"""The REST service: FastAPI over :mod:`dosewise.app`, each party acting in its own role.

* :mod:`~dosewise.service.app`: the application factory (:func:`create_app`);
* :mod:`~dosewise.service.settings`: settings from ``DOSEWISE_*`` environment variables;
* :mod:`~dosewise.service.auth`: bearer API keys and the rights of each role;
* :mod:`~dosewise.service.problems`: errors as RFC 9457 problem details;
* :mod:`~dosewise.service.routes`: the endpoints; :mod:`~dosewise.service.events`: the event stream.

Holds parsing, rendering and authorisation only; every rule of a round lives in the domain.
"""
