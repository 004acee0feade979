"""kopf glue: thin handlers, settings, login, probes. The logic lives in `cluster` and
`planning`."""
