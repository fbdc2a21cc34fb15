"""The coordinator as the agent sees it: its own copy of the wire, the HTTP client, registration,
rentable units and the backoff rules. Imports the GPU layer, never the lease or service layers."""
