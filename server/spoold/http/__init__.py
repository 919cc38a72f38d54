"""The HTTP door: Connect for every RPC, the REST routes, health, on one ASGI app served by hypercorn
in spoold's own event loop. It reaches the same service code as gRPC (door.py)."""
