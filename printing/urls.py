"""Web pages of the printing app (mounted at the root by pacs.web_urls)."""

from django.urls import path

from printing import views

urlpatterns = [
    path("print/", views.PrintJobListView.as_view(), name="print-list"),
    path("print/<int:job_id>/", views.PrintJobDetailView.as_view(), name="print-detail"),
    path("print/<int:job_id>/download/", views.PrintJobDownloadView.as_view(), name="print-download"),
    path("print/<int:job_id>/forward/", views.PrintJobForwardView.as_view(), name="print-forward"),
    path("print/<int:job_id>/delete/", views.PrintJobDeleteView.as_view(), name="print-delete"),
    path("print/<int:job_id>/films/<int:film_number>/preview.png", views.FilmPreviewView.as_view(),
         name="print-film-preview"),
    path("print/<int:job_id>/films/<int:film_number>/film.dcm", views.FilmDicomView.as_view(),
         name="print-film-dicom"),
]
