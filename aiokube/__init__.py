"""aiokube: a Kubernetes-style control plane on asyncio."""

__version__ = "0.1.0"
