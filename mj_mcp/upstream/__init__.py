"""The upstream API: its data models and its HTTP client (knows nothing of MCP)."""

from .client import Upstream
from .models import TaskRecord, TaskUpdate

__all__ = ["TaskRecord", "TaskUpdate", "Upstream"]
