"""privis.serve: the HTTP inference server of the client/server deployment, and its client.

``create_app`` (in :mod:`privis.serve.app`) hosts an unchanged classifier; :mod:`privis.serve.client`
protects images locally with a perturbation generator and sends only the protected images. Both import
FastAPI/httpx, so this package imports nothing eagerly.
"""
