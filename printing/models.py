"""Models of the printing app (added by its issue)."""
