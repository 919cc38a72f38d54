"""Who is calling, and what they may do: API keys, scopes and queue patterns, independent of any
transport. A door (the gRPC interceptor, an HTTP middleware) hands the `authorization` header
values to `Gate.admit`, then runs the service code under the resulting `Principal`."""
