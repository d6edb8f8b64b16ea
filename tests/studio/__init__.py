"""The studio tier: product rules through Studio.open, no MCP."""
