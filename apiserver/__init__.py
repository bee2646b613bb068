"""The aiokube API server: a Kubernetes-compatible REST API over etcd."""
