"""Unit tests for iwork_mc.client, the Python SDK (no server: httpx.MockTransport)."""
