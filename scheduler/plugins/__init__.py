"""Scheduling plugins, one module per plugin, each with a `name`, its reason strings and a `new` factory."""
