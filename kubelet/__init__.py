"""The node agent: registers the node, runs the pods bound to it on containerd through CRI, reports status."""
