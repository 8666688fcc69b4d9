"""The device-facing transports: how devices reach provisioning.

One subpackage per transport — ``http`` (the device API's routes, served by the HTTP app),
``mqtt`` (the provisioning listener), ``coap`` — each a small adapter: parse, call
:meth:`provisiond.services.provisioning.Provisioner.answer` (or the device service a route
names), render. bootstrap.py starts the ones the settings ask for beside the HTTP server and
adds the device routes to the HTTP app; ``transports`` and ``web`` never import each other.
"""
