"""Write paths of the worklist app: items, MPPS, housekeeping."""
