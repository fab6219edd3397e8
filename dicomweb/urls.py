"""URL routes of DICOMweb (/dicomweb/...) and WADO-URI (/wado)."""

urlpatterns: list = []
