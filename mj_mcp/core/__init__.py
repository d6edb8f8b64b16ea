"""The pure core: the action catalogue, prompt flags, mask geometry. No network, no disk, no MCP."""
