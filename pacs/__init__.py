"""The archive core: models, ingest, storage, settings."""

import os

# numpy (pydicom, pixel codecs) starts OpenBLAS with a worker thread per core that
# spins between calls: measured at ~2.5% of both cores while storing, for no BLAS
# work at all (the archive does no matrix algebra).  Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
