"""Generic REST verbs shared by every resource: create, get, list, update, patch, delete, deletecollection,
watch and the status/scale/binding/eviction subresources. Per-kind rules come from the resource's Strategy."""
