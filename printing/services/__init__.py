"""Services of the printing app: the only writers of its models (see each module)."""
