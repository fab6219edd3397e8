"""URL routes of DICOMweb (``/dicomweb/...``, PS3.18 paths exactly) and WADO-URI (``/wado``).

UID segments accept any non-slash text and are validated in the view, so a
bad UID is a 400 naming it rather than a 404.  A trailing slash is accepted
and never redirected (a redirect would turn a STOW-RS POST into a GET).
"""

from django.urls import re_path

from dicomweb.api import views

UID = r"(?P<{}>[^/]+)"
ST = "dicomweb/studies/" + UID.format("study")
SE = "/series/" + UID.format("series")
IN = "/instances/" + UID.format("instance")
FR = r"/frames/(?P<frames>[^/]+)"
END = r"/?$"

urlpatterns = [
    # QIDO-RS (10.6) and STOW-RS (10.5)
    re_path(r"^dicomweb/studies" + END, views.studies_resource, name="dicomweb-studies"),
    re_path(r"^dicomweb/series" + END, views.SeriesQueryView.as_view(), name="dicomweb-series-search"),
    re_path(r"^dicomweb/instances" + END, views.InstanceQueryView.as_view(), name="dicomweb-instances-search"),
    re_path("^" + ST + "/series" + END, views.SeriesQueryView.as_view(), name="dicomweb-study-series"),
    re_path("^" + ST + "/instances" + END, views.InstanceQueryView.as_view(), name="dicomweb-study-instances"),
    re_path("^" + ST + SE + "/instances" + END, views.InstanceQueryView.as_view(), name="dicomweb-series-instances"),
    # WADO-RS (10.4)
    re_path("^" + ST + END, views.study_resource, name="dicomweb-study"),
    re_path("^" + ST + "/metadata" + END, views.MetadataView.as_view(), name="dicomweb-study-metadata"),
    re_path("^" + ST + "/rendered" + END, views.RenderedView.as_view(), name="dicomweb-study-rendered"),
    re_path("^" + ST + "/thumbnail" + END, views.ThumbnailView.as_view(), name="dicomweb-study-thumbnail"),
    re_path("^" + ST + SE + END, views.InstanceRetrieveView.as_view(), name="dicomweb-series"),
    re_path("^" + ST + SE + "/metadata" + END, views.MetadataView.as_view(), name="dicomweb-series-metadata"),
    re_path("^" + ST + SE + "/rendered" + END, views.RenderedView.as_view(), name="dicomweb-series-rendered"),
    re_path("^" + ST + SE + "/thumbnail" + END, views.ThumbnailView.as_view(), name="dicomweb-series-thumbnail"),
    re_path("^" + ST + SE + IN + END, views.InstanceRetrieveView.as_view(), name="dicomweb-instance"),
    re_path("^" + ST + SE + IN + "/metadata" + END, views.MetadataView.as_view(), name="dicomweb-instance-metadata"),
    re_path("^" + ST + SE + IN + "/rendered" + END, views.RenderedView.as_view(), name="dicomweb-instance-rendered"),
    re_path("^" + ST + SE + IN + "/thumbnail" + END, views.ThumbnailView.as_view(),
            name="dicomweb-instance-thumbnail"),
    re_path("^" + ST + SE + IN + FR + END, views.FrameRetrieveView.as_view(), name="dicomweb-frames"),
    re_path("^" + ST + SE + IN + FR + "/rendered" + END, views.RenderedView.as_view(), name="dicomweb-frames-rendered"),
    re_path("^" + ST + SE + IN + r"/bulkdata/(?P<tag>[^/]+)" + END, views.BulkDataView.as_view(),
            name="dicomweb-bulkdata"),
    # WADO-URI (PS3.18 9)
    re_path(r"^wado/?$", views.WadoUriView.as_view(), name="wado-uri"),
    re_path(r"^dicomweb/(?P<rest>.*)$", views.malformed_path, name="dicomweb-malformed"),
]
