"""Named DIMSE status codes (PS3.7 Annex C, PS3.4 service annexes). No bare numbers elsewhere."""

SUCCESS = 0x0000
# General
CANCEL = 0xFE00  # Matching/sub-operations terminated due to Cancel request
PENDING = 0xFF00  # Matches are continuing / sub-operations are continuing
PENDING_WARNING = 0xFF01  # Matches continuing, optional keys not supported
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_OBJECT_INSTANCE = 0x0112
NO_SUCH_ATTRIBUTE = 0x0105
INVALID_ATTRIBUTE_VALUE = 0x0106
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
SOP_CLASS_NOT_SUPPORTED = 0x0122
INVALID_OBJECT_INSTANCE = 0x0117
NOT_AUTHORIZED = 0x0124
# C-STORE (PS3.4 B.2.3)
OUT_OF_RESOURCES = 0xA700  # Refused: out of resources
DATASET_MISMATCH = 0xA900  # Error: data set does not match SOP class
CANNOT_UNDERSTAND = 0xC000  # Error: cannot understand
COERCION_OF_DATA_ELEMENTS = 0xB000  # Warning
ELEMENTS_DISCARDED = 0xB006  # Warning
# C-FIND / C-MOVE / C-GET (PS3.4 C.4)
FIND_OUT_OF_RESOURCES = 0xA700
MOVE_OUT_OF_RESOURCES_SUBOPS = 0xA702  # unable to perform sub-operations
MOVE_DESTINATION_UNKNOWN = 0xA801
IDENTIFIER_MISMATCH = 0xA900
UNABLE_TO_PROCESS = 0xC001
SUBOPS_COMPLETE_WITH_FAILURES = 0xB000
# Query/Retrieve (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4)
FIND_RESPONSE_LIMIT = 0xB001  # Warning: matching reached response limit, refine the query
MOVE_UNABLE_TO_CALCULATE = 0xA701  # Out of resources: unable to calculate number of matches
# DIMSE-N (PS3.7 C, PS3.4 Annex H print management)
NO_SUCH_SOP_CLASS = 0x0118
NO_SUCH_ACTION = 0x0123
UNRECOGNISED_OPERATION = 0x0211
