"""What comes in: image conversion, frame ingest, the window buffer."""
