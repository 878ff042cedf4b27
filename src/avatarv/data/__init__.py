"""Data: the curation engine (``data.curation``) that turns raw footage into training shards."""
