"""The API folder's own fixture: a studio with a real worker served over real HTTP, for remove.bg's clients."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.support.photo_server import PhotoServer
from tests.support.removebg import HttpServer

# Duplicates off: the studio's own call must run the model again, not reuse the remove.bg call's result.
STACK_SETTINGS = {"STUDIO_IMAGE_URL_ALLOW_PRIVATE": True, "STUDIO_REUSE_DUPLICATES": False, "SERVER_NAME": None}


@pytest.fixture
def stack(make_studio) -> Iterator[Any]:
    """Return a Studio with a real worker, served over HTTP (base_url, token), and a server of photos by URL."""
    studio = make_studio(**STACK_SETTINGS)
    studio.start_worker(STUDIO_IMAGE_URL_ALLOW_PRIVATE="true", STUDIO_REUSE_DUPLICATES="false")
    server, photos = HttpServer(studio.app), PhotoServer()
    studio.base_url, studio.photos = server.url, photos
    studio.token = studio.headers["Authorization"].removeprefix("Bearer ")
    yield studio
    server.close()
    photos.close()
