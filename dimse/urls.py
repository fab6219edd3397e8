"""Web pages of the dimse app (mounted at the root by pacs.web_urls)."""

from django.urls import path

from dimse import views

urlpatterns = [
    path("qr/", views.QueryRetrievePageView.as_view(), name="qr-page"),
    path("qr/query/", views.StudyQueryView.as_view(), name="qr-query"),
    path("qr/query/<int:job_id>/", views.QueryDataView.as_view(), name="qr-query-data"),
    path("qr/series/", views.SeriesQueryView.as_view(), name="qr-series"),
    path("qr/retrieve/", views.RetrieveView.as_view(), name="qr-retrieve"),
    path("qr/retrievals/", views.RetrievalDataView.as_view(), name="qr-retrievals"),
]
