"""Security of the API server: who is calling (authentication: client certificates, static and bootstrap
tokens), may they do it (authorization: RBAC, the node restriction), and the ASGI middleware that applies both
in front of the app. TLS serving with the peer certificate in the ASGI scope lives in `tls`."""
