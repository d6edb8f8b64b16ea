"""A record's media: the on-disk cache, downloads, the pictures made of them, and export to the user's folder."""

from .images import Media, Preview

__all__ = ["Media", "Preview"]
