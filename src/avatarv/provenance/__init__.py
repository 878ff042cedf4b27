"""Provenance of generated videos: an invisible watermark (``watermark``) and a signed C2PA manifest
stating the video is AI-generated (``c2pa``). ``avatarv watermark detect|embed|manifest`` (``cli``)."""
