"""Serving avatars: consent for an avatar (``challenge``, ``consent``) and the server that uses it.

``avatarv serve`` (``cli.py``) runs ``app.create_app``: FastAPI over a SQLite store (``store.py``) and a data
folder (``files.py``); accounts and rate limits (``auth.py``); avatars with consent (``api_avatars.py``);
moderation (``moderation.py``); jobs through a bounded queue (``scheduler.py``) to local worker processes or
Ray (``executors.py``) running the pipeline, the watermark and the C2PA signature (``jobs.py``); admin
(``api_admin.py``); the web page is ``avatarv/assets/serve/``.
"""
