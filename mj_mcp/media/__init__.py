"""A record's picture: the on-disk cache, downloads, thumbnails, and export to the user's folder."""
