"""Web pages (class-based, login required): they call selectors and services only.

Split by sub-domain: :mod:`.studies` (study list, viewer, external viewers),
:mod:`.operations` (status, settings, logs, jobs, upload).
"""
