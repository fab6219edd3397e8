"""Web pages of the worklist app (mounted at the root by pacs.web_urls)."""

from django.urls import path

from worklist import views

urlpatterns = [
    path("worklist/", views.WorklistListView.as_view(), name="worklist-list"),
    path("worklist/new/", views.WorklistItemCreateView.as_view(), name="worklist-create"),
    path("worklist/<int:item_id>/edit/", views.WorklistItemEditView.as_view(), name="worklist-edit"),
    path("worklist/<int:item_id>/delete/", views.WorklistItemDeleteView.as_view(), name="worklist-delete"),
]
