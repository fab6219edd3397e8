"""OpenAPI descriptions of the DICOMweb resources (drf-spectacular), kept out of the views."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema

ACCEPT_DICOM = OpenApiParameter(
    "Accept", str, OpenApiParameter.HEADER,
    description='multipart/related; type="application/dicom"[; transfer-syntax=UID or *] (default Explicit VR LE). '
    "Written: Explicit/Implicit VR LE, RLE, JPEG Baseline (8-bit), Extended (up to 12-bit), Lossless .57/.70, "
    "JPEG-LS lossless/near-lossless, JPEG 2000 lossless/lossy; lossy answers are derived instances with a new "
    "SOP Instance UID (PS3.3 C.7.6.1.1.5). Several media types may be listed with q values: each instance gets "
    "the first one it can be delivered in; 406 names the instance that fits none.",
)
ACCEPT_FRAMES = OpenApiParameter(
    "Accept", str, OpenApiParameter.HEADER,
    description='multipart/related; type="application/octet-stream" (native) or an image type (image/jls, '
    "image/jp2, image/jpeg, image/dicom-rle) with an optional transfer-syntax",
)
DICOM_JSON = {(200, "application/dicom+json"): OpenApiTypes.OBJECT}
MULTIPART = {
    (200, "multipart/related"): OpenApiTypes.BINARY,
    404: OpenApiResponse(description="Unknown UID"),
    406: OpenApiResponse(description="The requested media type / transfer syntax cannot be produced"),
}
IMAGE = {(200, "image/jpeg"): OpenApiTypes.BINARY, (200, "image/png"): OpenApiTypes.BINARY}

QIDO_PARAMS = [
    OpenApiParameter("limit", int, description="At most this many results (server cap 1000; Warning header)"),
    OpenApiParameter("offset", int, description="Skip this many results"),
    OpenApiParameter("fuzzymatching", bool, description="Person names match any name component by prefix"),
    OpenApiParameter("includefield", str, many=True,
                     description="Extra attributes (keyword or tag, comma list, repeated, or 'all')"),
    OpenApiParameter("PatientName", str, description="PN matching, * and ? wildcards, e.g. WANG*"),
    OpenApiParameter("PatientID", str),
    OpenApiParameter("StudyDate", str, description="YYYYMMDD or a range: 20240101-20240131, 20240101-, -20240131"),
    OpenApiParameter("AccessionNumber", str),
    OpenApiParameter("StudyInstanceUID", str, description="One UID or a list separated by comma or backslash"),
    OpenApiParameter("ModalitiesInStudy", str, description="Modality (alias Modality at the study level)"),
]
RENDER_PARAMS = [
    OpenApiParameter("window", str, description="center,width[,linear|linear-exact|sigmoid]"),
    OpenApiParameter("viewport", str, description="width,height of the box the image fits in (aspect kept)"),
    OpenApiParameter("quality", int, description="JPEG quality 1-100"),
    OpenApiParameter("accept", str, enum=["image/jpeg", "image/png"], description="Media type (instead of Accept)"),
]
THUMB_PARAMS = [
    OpenApiParameter("size", int, description="Largest side in pixels (default 128)"),
    OpenApiParameter("viewport", str, description="width,height box (aspect kept)"),
]

qido = extend_schema(
    tags=["dicomweb"], summary="QIDO-RS search (PS3.18 10.6); no match answers 200 with []",
    parameters=QIDO_PARAMS, responses={**DICOM_JSON, 400: OpenApiResponse(description="Malformed query key/value")},
)
stow = extend_schema(
    tags=["dicomweb"], summary="STOW-RS store (PS3.18 10.5): 200 all stored, 202 partial, 409 none, 415 type",
    request={'multipart/related; type="application/dicom"': OpenApiTypes.BINARY},
    responses={(200, "application/dicom+json"): OpenApiTypes.OBJECT,
               (202, "application/dicom+json"): OpenApiTypes.OBJECT,
               (409, "application/dicom+json"): OpenApiTypes.OBJECT,
               415: OpenApiResponse(description="Not multipart/related application/dicom")},
)
retrieve = extend_schema(tags=["dicomweb"], summary="WADO-RS retrieve instances (PS3.18 10.4)",
                         parameters=[ACCEPT_DICOM], responses=MULTIPART)
metadata = extend_schema(
    tags=["dicomweb"], summary="WADO-RS metadata with BulkDataURI (PS3.18 10.4): DICOM JSON or Native DICOM Model XML",
    parameters=[
        OpenApiParameter("inlinebinary", bool, description="Inline small binary values instead of URIs"),
        OpenApiParameter("Accept", str, OpenApiParameter.HEADER,
                         description='application/dicom+json (default), multipart/related; '
                         'type="application/dicom+xml" (one part per instance), or application/dicom+xml '
                         "for a single instance"),
    ],
    responses={**DICOM_JSON, (200, "multipart/related"): OpenApiTypes.BINARY,
               (200, "application/dicom+xml"): OpenApiTypes.STR,
               406: OpenApiResponse(description="No acceptable metadata media type")},
)
frames = extend_schema(tags=["dicomweb"], summary="WADO-RS frames, e.g. /frames/1 or /frames/1,3,5",
                       parameters=[ACCEPT_FRAMES], responses=MULTIPART)
bulkdata = extend_schema(tags=["dicomweb"], summary="WADO-RS bulk data named by a BulkDataURI",
                         parameters=[ACCEPT_FRAMES], responses=MULTIPART)
rendered = extend_schema(tags=["dicomweb"], summary="WADO-RS rendered JPEG/PNG (multipart for series/study)",
                         parameters=RENDER_PARAMS, responses={**IMAGE, (200, "multipart/related"): OpenApiTypes.BINARY})
thumbnail = extend_schema(tags=["dicomweb"], summary="Thumbnail JPEG of a study, series or instance",
                          parameters=THUMB_PARAMS, responses=IMAGE)
wado_uri = extend_schema(
    tags=["dicomweb"], summary="WADO-URI (PS3.18 9)",
    parameters=[
        OpenApiParameter("requestType", str, required=True, enum=["WADO"]),
        OpenApiParameter("studyUID", str, required=True),
        OpenApiParameter("seriesUID", str, required=True),
        OpenApiParameter("objectUID", str, required=True),
        OpenApiParameter("contentType", str, enum=["image/jpeg", "image/png", "application/dicom"]),
        OpenApiParameter("transferSyntax", str, description="Transfer syntax UID of application/dicom (as for "
                         "WADO-RS); not a transfer syntax: 400; one not written for this object: 406"),
        OpenApiParameter("anonymize", str, enum=["yes"]),
        OpenApiParameter("rows", int), OpenApiParameter("columns", int),
        OpenApiParameter("windowCenter", float), OpenApiParameter("windowWidth", float),
        OpenApiParameter("frameNumber", int),
        OpenApiParameter("imageQuality", int, description="1-100: JPEG quality of images, and of application/dicom "
                         "in a lossy transferSyntax"),
        OpenApiParameter("region", str, description="x1,y1,x2,y2 fractions of the image"),
    ],
    responses={**IMAGE, (200, "application/dicom"): OpenApiTypes.BINARY},
    examples=[OpenApiExample("JPEG", value=None)],
)
