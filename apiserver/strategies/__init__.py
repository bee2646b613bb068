"""Per-kind rules: defaults, validation, status handling, table columns, selectable fields.

`strategy_for(resource_info)` returns the Strategy of a resource; kinds without a module of their own get
`Strategy` itself (generic rules only).
"""
