"""What every component shares about the API: the resource registry, Status errors, object helpers. No I/O."""
