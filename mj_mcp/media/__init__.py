"""A record's media: the on-disk cache, downloads, the pictures made of them (a video's poster), and export
to the user's folder."""

from .images import Media, Poster, Preview

__all__ = ["Media", "Poster", "Preview"]
