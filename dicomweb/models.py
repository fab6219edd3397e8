"""Models of the dicomweb app (added by its issue)."""
