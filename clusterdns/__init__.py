"""aiokube's cluster DNS: answers `<svc>.<ns>.svc.<domain>` names from Services and EndpointSlices and forwards
every other name to the host's resolver. Run as `python -m clusterdns --kubeconfig FILE --bind IP:PORT`."""
