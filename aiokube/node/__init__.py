"""What both the node agent and the `aiokube` CLI need about a node: a private containerd, local images."""
