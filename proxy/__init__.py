"""aiokube's service proxy (kube-proxy): programs nftables for ClusterIP/NodePort Services on one node, and
host-gw routes to the other nodes' pod CIDRs. Run as `python -m proxy --kubeconfig FILE --node-name NAME`."""
