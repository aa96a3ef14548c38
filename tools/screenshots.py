"""Screenshots of the studio's pages from real runs on the fixture photos, for the README and for looking at them.

    .venv/bin/python tools/screenshots.py [--out /tmp/shots] [--readme]

Starts the whole studio as `make run` does (processes.launcher: migrations, gunicorn, the workers and an embedded
Redis) on SQLite and local storage in a temporary folder, makes an account, processes fixture photos
(STUDIO_FIXTURES_DIR/photos) with several operations and a batch, then photographs each page in Chromium at 390 and
1280 px into --out. With --readme it also writes the README's pictures of the pages (docs/pictures/task-page.jpg,
page-*.jpg).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
EMAIL, PASSWORD = "ada@example.com", "screenshots-password"
WIDTHS = (390, 1280)
# The README's pictures: (page name, width, file); each a JPEG under README_LIMIT bytes.
README_PICTURES = (("task-cutout", 1280, "task-page.jpg"), ("history", 1280, "page-history.jpg"),
                   ("history", 390, "page-history-phone.jpg"), ("upload-hint", 1280, "page-upload.jpg"))
README_LIMIT = 150_000
PHOTO_WIDTH = 480


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_studio(folder: Path, port: int) -> subprocess.Popen:
    """Start processes.launcher on SQLite, local storage and its own Redis; return once it serves."""
    dropped = {"DATABASE_URL", "REDIS_URL", "STUDIO_S3_BUCKET", "STUDIO_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR"}
    env = {name: value for name, value in os.environ.items() if name not in dropped}
    env.update(PORT=str(port), DATABASE_URL=f"sqlite:///{folder / 'studio.sqlite3'}", SECRET_KEY="screenshots",
               STUDIO_STORAGE_DIR=str(folder / "storage"), STUDIO_INSTANCE_DIR=str(folder / "instance"),
               STUDIO_WORKERS="1", STUDIO_TORCH_THREADS="2", STUDIO_REUSE_DUPLICATES="false", PYTHONUNBUFFERED="1",
               STUDIO_MODEL_DIR=os.environ.get("STUDIO_MODEL_DIR", str(ROOT / "instance" / "models")))
    log = open(folder / "studio.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "processes.launcher"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the studio exited:\n{(folder / 'studio.log').read_text()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.5)
    sys.exit("the studio did not serve within 180 s")


def stop_studio(process: subprocess.Popen) -> None:
    """Stop the launcher (it stops its children), killing its group if it lingers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Api:
    """The studio's API with a bearer token of the screenshots' account."""

    def __init__(self, base: str) -> None:
        self.base = base
        answer = requests.post(f"{base}/api/v1/tokens", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
        answer.raise_for_status()
        self.headers = {"Authorization": f"Bearer {answer.json()['token']}"}

    def task(self, photo: Path, operation: str, **options: str) -> str:
        """Upload a photo for an operation; return the task's id."""
        with photo.open("rb") as image:
            answer = requests.post(f"{self.base}/api/v1/tasks", headers=self.headers, timeout=60,
                                   files={"image": (photo.name, image)}, data={"operation": operation, **options})
        answer.raise_for_status()
        return answer.json()["id"]

    def batch(self, photos: list[Path], operation: str) -> str:
        """Upload photos as one batch; return its id."""
        files = [("images", (photo.name, photo.read_bytes())) for photo in photos]
        answer = requests.post(f"{self.base}/api/v1/batches", headers=self.headers, timeout=60, files=files,
                               data={"operation": operation})
        answer.raise_for_status()
        return answer.json()["id"]

    def wait(self, task_id: str, seconds: float = 600) -> str:
        """Wait until a task is finished; return its status."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            answer = requests.get(f"{self.base}/api/v1/tasks/{task_id}?wait=20", headers=self.headers, timeout=60)
            status = answer.json().get("status")
            if status is None:  # rate limited: ask again a little later
                time.sleep(2)
            time.sleep(1)
            if status in ("COMPLETED", "FAILED", "CANCELLED"):
                return status
        return "TIMEOUT"


def small_copy(photo: Path, folder: Path, width: int) -> Path:
    """Return a JPEG copy of a photo at most `width` pixels wide, under its own name."""
    with Image.open(photo) as image:
        image = image.convert("RGB")
        image.thumbnail((width, width * 4))
        target = folder / f"{photo.stem}.jpg"
        image.save(target, quality=90)
    return target


def shoot(page: Page, out: Path, name: str) -> None:
    """Photograph the whole page at each width into out/<name>-<width>.png; report pages wider than the screen."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(400)
        page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=True)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > width:
            print(f"WIDE: {name} at {width} px is {scroll} px wide")


def sign_up(page: Page, base: str) -> None:
    """Register the screenshots' account through the pages and sign in with it."""
    page.goto(f"{base}/register")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/login**")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def readme_pictures(out: Path) -> None:
    """Write the README's pictures of the pages as JPEGs at most 1280 px wide and README_LIMIT bytes."""
    for name, width, filename in README_PICTURES:
        with Image.open(out / f"{name}-{width}.png") as shot:
            picture = shot.convert("RGB").crop((0, 0, shot.width, min(shot.height, 2 * width if width < 600 else 900)))
        for quality in (85, 75, 65, 55, 45):
            data = io.BytesIO()
            picture.save(data, "JPEG", quality=quality, optimize=True, progressive=True)
            if data.tell() <= README_LIMIT:
                break
        (ROOT / "docs" / "pictures" / filename).write_bytes(data.getvalue())
        print(f"docs/pictures/{filename}: {data.tell() // 1024} KB")


def photograph(base: str, out: Path, work: Path, people: bool) -> None:
    """Make the tasks and photograph every page; with `people`, a face task on a photo of people too.

    The README may show the fixtures' animals and objects, at most 480 pixels wide (their licence's attribution is
    in the README): every photo is uploaded as such a copy, and its pictures leave the people out.
    """
    fixtures = Path(os.environ.get("STUDIO_FIXTURES_DIR", "/work/shared/fixtures")) / "photos"
    photos = work / "photos"
    photos.mkdir(exist_ok=True)
    for name in ("horse.jpg", "boat.jpg", "rifle2.jpeg", "long.jpg", "vangogh.jpeg", "Two_dancers.jpg"):
        small_copy(fixtures / name, photos, PHOTO_WIDTH)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/")
        shoot(page, out, "landing")
        sign_up(page, base)
        api = Api(base)
        cutout = api.task(photos / "horse.jpg", "remove_background")
        crop = api.task(photos / "horse.jpg", "smart_crop", aspect="16:9")
        stylize = api.task(photos / "boat.jpg", "stylize", style="starry-swirls")
        # A small photo: an upscale that takes seconds, not minutes.
        upscale = api.task(small_copy(fixtures / "rifle2.jpeg", work, 240), "upscale", scale="2")
        detect = api.task(photos / "horse.jpg", "detect")
        faces = api.task(photos / "Two_dancers.jpg", "faces") if people else None
        batch = api.batch([photos / "horse.jpg", photos / "boat.jpg", photos / "rifle2.jpg"], "remove_background")
        # A running task: a 4x upscale, photographed while it runs, then cancelled.
        big = api.task(photos / "long.jpg", "upscale", scale="4")
        page.goto(f"{base}/tasks/{big}")
        page.wait_for_timeout(6000)
        shoot(page, out, "task-running")
        # Not worth minutes of the CPUs once its picture is taken; gone from the history too.
        requests.post(f"{base}/api/v1/tasks/{big}/cancel", headers=api.headers, timeout=30)
        requests.delete(f"{base}/api/v1/tasks/{big}", headers=api.headers, timeout=30)
        tasks = {"task-cutout": cutout, "task-smart-crop": crop, "task-stylize": stylize, "task-upscale": upscale,
                 "task-detect": detect, **({"task-faces": faces} if faces else {})}
        for name, task in tasks.items():
            print(name, api.wait(task))
        for name, task in tasks.items():
            page.goto(f"{base}/tasks/{task}")
            page.wait_for_load_state("networkidle")
            shoot(page, out, name)
        page.goto(f"{base}/batches/{batch}")
        page.wait_for_timeout(3000)
        shoot(page, out, "batch")
        page.goto(f"{base}/tasks")
        page.wait_for_load_state("networkidle")
        for box in page.locator("input[name=selected]").all()[:3]:
            box.check()
        shoot(page, out, "history")
        page.goto(f"{base}/tasks?operation=remove_background&status=COMPLETED")
        shoot(page, out, "history-filtered")
        page.goto(f"{base}/")
        page.select_option("#operation", "upscale")
        page.wait_for_timeout(1000)
        page.set_input_files("#photo", [str(fixtures / "long.jpg")])
        page.wait_for_timeout(1000)
        shoot(page, out, "upload-hint")
        page.set_input_files("#photo", [str(ROOT / "README.md")])
        page.click("#upload-button")
        page.wait_for_timeout(2500)
        shoot(page, out, "upload-error")
        page.goto(f"{base}/account")
        shoot(page, out, "account")
        browser.close()


def main() -> int:
    """Run the studio, photograph its pages and, with --readme, write the README's pictures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "studio-shots")
    parser.add_argument("--readme", action="store_true", help="also write the README's pictures of the pages")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="studio-shots-") as folder:
        port = free_port()
        studio = start_studio(Path(folder), port)
        try:
            photograph(f"http://127.0.0.1:{port}", arguments.out, Path(folder), people=not arguments.readme)
        finally:
            stop_studio(studio)
    if arguments.readme:
        readme_pictures(arguments.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
