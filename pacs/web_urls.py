"""Web pages (templates + static JS), mounted at the root after the APIs."""

from django.urls import include, path, re_path

from pacs.views import ohif, operations, studies

urlpatterns = [
    path("", studies.StudyListView.as_view(), name="study-list"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("studies/<str:study_uid>/series/", studies.StudySeriesView.as_view(), name="study-series"),
    path("studies/<str:study_uid>/edit/", studies.StudyEditView.as_view(), name="study-edit"),
    path("studies/<str:study_uid>/delete/", studies.StudyDeleteView.as_view(), name="study-delete"),
    path("studies/<str:study_uid>/download/", studies.StudyDownloadView.as_view(), name="study-download"),
    path("studies/<str:study_uid>/weasis/", studies.WeasisLaunchView.as_view(), name="weasis-launch"),
    path("studies/<str:study_uid>/weasis.xml", studies.WeasisManifestView.as_view(), name="weasis-manifest"),
    path("studies/<str:study_uid>/external/", studies.ExternalViewerView.as_view(), name="external-viewer"),
    path("studies/send/", studies.StudySendView.as_view(), name="study-send"),
    path("viewer/<str:study_uid>/", studies.ViewerView.as_view(), name="viewer"),
    path("viewer/<str:study_uid>/tags/<str:series_uid>/<str:sop_uid>/", studies.InstanceTagsView.as_view(),
         name="instance-tags"),
    re_path(r"^ohif/(?P<path>.*)$", ohif.OhifView.as_view(), name="ohif"),
    path("send/", operations.SendPageView.as_view(), name="send-page"),
    path("send/upload/", operations.UploadView.as_view(), name="upload"),
    path("jobs/", operations.JobListView.as_view(), name="job-list"),
    path("jobs/data/", operations.JobDataView.as_view(), name="job-data"),
    path("jobs/<int:job_id>/retry/", operations.JobRetryView.as_view(), name="job-retry"),
    path("jobs/<int:job_id>/cancel/", operations.JobCancelView.as_view(), name="job-cancel"),
    path("logs/", operations.LogListView.as_view(), name="log-list"),
    path("logs/<str:service>/tail/", operations.LogTailView.as_view(), name="log-tail"),
    path("logs/<str:service>/download/", operations.LogDownloadView.as_view(), name="log-download"),
    path("logs/delete-old/", operations.LogDeleteOldView.as_view(), name="log-delete-old"),
    path("status/", operations.StatusView.as_view(), name="status"),
    path("status/data/", operations.StatusDataView.as_view(), name="status-data"),
    path("status/listeners/", operations.ListenerCommandView.as_view(), name="listener-command"),
    path("settings/", operations.SettingsView.as_view(), name="settings"),
    # Pages owned by the other apps (their own urls modules).
    path("", include("worklist.urls")),
    path("", include("dimse.urls")),
    path("", include("printing.urls")),
]
