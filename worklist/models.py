"""Models of the worklist app (added by its issue)."""
