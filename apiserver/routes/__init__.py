"""HTTP routing: fixed endpoints (version, health, metrics, discovery, openapi) and the resource paths."""
