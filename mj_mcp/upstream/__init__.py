"""The upstream API: its typed requests, its reply models and its HTTP client (knows nothing of MCP)."""

from .client import Upstream
from .models import TaskUpdate, UpstreamTask
from .requests import ENDPOINTS, TASK_ENDPOINTS, Endpoint, Retry

__all__ = ["ENDPOINTS", "TASK_ENDPOINTS", "Endpoint", "Retry", "TaskUpdate", "Upstream", "UpstreamTask"]
