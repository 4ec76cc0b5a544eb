"""Stand-ins for the city's systems the mirror reads: each district's Paraply and Agresso, over HTTP, with
the synthetic city's people in them and faults on demand. Test and demo infrastructure: `services/` never
imports it. See upstreams/README.md for the API they serve.

In a test:

    async with serve_all(people=500) as running:
        url, headers = running.url("paraply-bromma"), running.headers("paraply-bromma")
        await running.set_knobs("agresso", throttle_rate=1.0)
        running.mutate("paraply-bromma", "tie", count=5)

From a shell: `python -m upstreams` (its settings are environment variables, listed in the README).
"""

from upstreams.credentials import AGRESSO, CONTROL, Credentials, credentials, instance_names, sources_document
from upstreams.knobs import KnobError, Knobs
from upstreams.mutations import MutationError
from upstreams.server import Running, layout, serve_all

__all__ = [
    "AGRESSO",
    "CONTROL",
    "Credentials",
    "KnobError",
    "Knobs",
    "MutationError",
    "Running",
    "credentials",
    "instance_names",
    "layout",
    "serve_all",
    "sources_document",
]
