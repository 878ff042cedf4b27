"""Serving avatars: consent for an avatar (challenge phrases, verification) and the server that uses it."""
