"""mj-mcp: an MCP server for Midjourney through the AceDataCloud Imagine API."""

__version__ = "0.1.0"
