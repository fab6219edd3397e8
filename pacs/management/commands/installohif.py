"""``python manage.py installohif``: install the OHIF viewer served under ``/ohif/``.

Fetches the prebuilt ``dist/`` of the npm package ``@ohif/app`` with
``npm pack`` (npm checks the registry's integrity hash), unpacks it into
``PACS_OHIF_DIR`` (git-ignored) and adapts it to live below ``/ohif/``:

- the build assumes the site root: ``window.PUBLIC_URL``, the asset URLs of
  ``index.html``, the webpack public path of every bundle
  (``__webpack_require__.p = "/"``) and ``manifest.json`` are rewritten to
  ``/ohif/``, and ``routerBasename`` is set in our own ``app-config.js``;
- our ``app-config.js`` has one data source: this server's ``/dicomweb``
  (QIDO-RS/WADO-RS) with the user's session cookie (same origin), nothing
  remote;
- the service-worker bootstrap, which would pull Workbox from a CDN, is
  replaced by one that only unregisters old service workers.

The new copy is built beside the old one and swapped in with renames, so a
failed download never leaves a half-installed viewer.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

OHIF_PACKAGE = "@ohif/app"
# Pinned: the rewrites below are checked against this build's layout.
OHIF_VERSION = "3.13.2"
PREFIX = "/ohif/"
VERSION_FILE = ".pacs-ohif-version"

APP_CONFIG = """/* Written by `manage.py installohif`: OHIF against this server's own DICOMweb. */
window.config = {
  name: "pacs",
  routerBasename: "/ohif",
  showStudyList: true,
  extensions: [],
  modes: [],
  customizationService: {},
  maxNumberOfWebWorkers: 3,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: "never" },
  maxNumRequests: { interaction: 100, thumbnail: 10, prefetch: 10 },
  defaultDataSourceName: "pacs",
  dataSources: [
    {
      namespace: "@ohif/extension-default.dataSourcesModule.dicomweb",
      sourceName: "pacs",
      configuration: {
        friendlyName: "PACS",
        name: "pacs",
        qidoRoot: window.location.origin + "/dicomweb",
        wadoRoot: window.location.origin + "/dicomweb",
        wadoUriRoot: window.location.origin + "/wado",
        qidoSupportsIncludeField: true,
        supportsReject: false,
        supportsStow: false,
        imageRendering: "wadors",
        thumbnailRendering: "wadors",
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: false,
        singlepart: "bulkdata,video",
        bulkDataURI: { enabled: true, relativeResolution: "studies" },
        omitQuotationForMultipartRequest: true,
      },
    },
  ],
};
"""

SERVICE_WORKER_BOOTSTRAP = """/* Written by `manage.py installohif`: no service worker (the stock one loads Workbox from a CDN). */
if (navigator.serviceWorker) {
  navigator.serviceWorker.getRegistrations().then((registrations) => registrations.forEach((r) => r.unregister()));
}
"""


class Command(BaseCommand):
    help = f"Install the OHIF viewer ({OHIF_PACKAGE}) into PACS_OHIF_DIR, served at {PREFIX}."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ohif-version", dest="ohif_version", default=OHIF_VERSION, help="npm version of @ohif/app.")
        parser.add_argument("--tarball", default="", help="Use this npm pack tarball instead of downloading.")
        parser.add_argument("--force", action="store_true", help="Reinstall even if this version is installed.")

    def handle(self, *args, **options) -> None:
        target = Path(settings.PACS_OHIF_DIR)
        version = options["ohif_version"]
        marker = target / VERSION_FILE
        if not options["force"] and marker.is_file() and marker.read_text().strip() == version:
            self.stdout.write(f"OHIF {version} already installed in {target}")
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".ohif-") as tmp:
            tmp_path = Path(tmp)
            tarball = Path(options["tarball"]) if options["tarball"] else self._download(version, tmp_path)
            staging = tmp_path / "dist"
            self._unpack(tarball, staging)
            self._rewrite(staging)
            (staging / VERSION_FILE).write_text(version)
            old = tmp_path / "old"
            if target.exists():
                target.rename(old)
            staging.rename(target)
        self.stdout.write(self.style.SUCCESS(f"OHIF {version} installed in {target}; open {PREFIX}"))

    def _download(self, version: str, folder: Path) -> Path:
        npm = shutil.which("npm")
        if not npm:
            raise CommandError("npm is needed to fetch OHIF (apt-get install -y npm), or pass --tarball.")
        try:
            result = subprocess.run(
                [npm, "pack", f"{OHIF_PACKAGE}@{version}", "--silent", "--pack-destination", str(folder)],
                cwd=folder, capture_output=True, text=True, timeout=900, check=True,
            )
        except subprocess.CalledProcessError as exc:
            raise CommandError(f"npm pack {OHIF_PACKAGE}@{version} failed: {exc.stderr.strip()[-500:]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise CommandError(f"npm pack {OHIF_PACKAGE}@{version} timed out") from exc
        name = result.stdout.strip().splitlines()[-1]
        return folder / name

    def _unpack(self, tarball: Path, staging: Path) -> None:
        if not tarball.is_file():
            raise CommandError(f"{tarball} not found")
        staging.mkdir()
        with tarfile.open(tarball, "r:gz") as archive:
            members = []
            for member in archive.getmembers():
                if not member.name.startswith("package/dist/") or not (member.isfile() or member.isdir()):
                    continue
                member.name = member.name[len("package/dist/"):]
                if member.name:
                    members.append(member)
            if not any(m.name == "index.html" for m in members):
                raise CommandError(f"{tarball.name} has no dist/index.html: not a prebuilt OHIF package")
            # filter="data": no absolute paths, no "..", no links outside, sane permissions.
            archive.extractall(staging, members=members, filter="data")

    def _rewrite(self, dist: Path) -> None:
        index = dist / "index.html"
        html = index.read_text(encoding="utf-8")
        html = html.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{PREFIX}"')
        html = re.sub(r'(href|src)="/(?!/)', rf'\1="{PREFIX}', html)
        index.write_text(html, encoding="utf-8")
        for bundle in dist.glob("*.js"):
            text = bundle.read_text(encoding="utf-8")
            if '__webpack_require__.p = "/";' in text:
                bundle.write_text(text.replace('__webpack_require__.p = "/";', f'__webpack_require__.p = "{PREFIX}";'),
                                  encoding="utf-8")
        manifest = dist / "manifest.json"
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            for icon in data.get("icons", []):
                if str(icon.get("src", "")).startswith("/"):
                    icon["src"] = PREFIX + icon["src"].lstrip("/")
            data["start_url"] = PREFIX
            manifest.write_text(json.dumps(data, indent=2), encoding="utf-8")
        (dist / "app-config.js").write_text(APP_CONFIG, encoding="utf-8")
        (dist / "init-service-worker.js").write_text(SERVICE_WORKER_BOOTSTRAP, encoding="utf-8")
        for name in ("sw.js", "_redirects", "_headers", "serve.json"):
            (dist / name).unlink(missing_ok=True)
