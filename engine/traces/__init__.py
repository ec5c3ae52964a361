"""Traces: what the engine did with each event, kept to be seen, replayed and turned into tests.

    document    a finished run as redacted, size-capped JSON: what the store keeps
    render      a trace as a readable tree (`mesbridge traces show`)
    export      traces as YAML test cases (`mesbridge traces export --as-test`)

A run is recorded as it happens by `engine.recorder` (cheap: references only). The service records
a trace for every event it handles (`engine.service.tracer`) unless a pipeline sets `trace: false`
or `traces.enabled` is off.
"""
