"""A ZIP upload is hostile until proven otherwise: each limit of studio/batches/zip_upload.py against an archive
crafted here with zipfile (and, for the headers that lie, patched by hand). No services: the reader needs none."""

from __future__ import annotations

import io
import stat
import struct
import tracemalloc
import zipfile

import pytest
from PIL import Image

from studio.batches import zip_upload
from studio.batches.zip_upload import ArchiveLimits, ArchiveRefused, PhotoArchive
from tests.support.images import encoded

LIMITS = ArchiveLimits(max_entries=10, max_total_bytes=8 * 1024 * 1024, max_ratio=100,
                       max_photo_bytes=4 * 1024 * 1024)
PHOTO = encoded(Image.new("RGB", (32, 24), (200, 40, 40)), "PNG")


def archive(*entries: tuple[str | zipfile.ZipInfo, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """Return a ZIP of these (name or ZipInfo, bytes) entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as made:
        for name, data in entries:
            made.writestr(name, data)
    return buffer.getvalue()


def opened(data: bytes, limits: ArchiveLimits = LIMITS) -> PhotoArchive:
    return PhotoArchive(io.BytesIO(data), limits)


def refusal(data: bytes, limits: ArchiveLimits = LIMITS) -> ArchiveRefused:
    with pytest.raises(ArchiveRefused) as refused:
        opened(data, limits)
    return refused.value


def lie_about_size(data: bytes, declared: int) -> bytes:
    """Return the archive with every header (local and central) declaring this uncompressed size."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = patched.find(signature)
        while start != -1:
            struct.pack_into("<I", patched, start + offset, declared)
            start = patched.find(signature, start + 4)
    return bytes(patched)


def test_an_archive_of_photos_is_read_entry_by_entry():
    photos = opened(archive(("a.png", PHOTO), ("folder/b.png", PHOTO), ("folder/", b"")))
    assert [info.filename for info in photos.entries] == ["a.png", "folder/b.png"]
    assert photos.skipped == []
    assert photos.read(photos.entries[1]) == PHOTO


def test_more_entries_than_allowed_are_refused_from_the_end_record():
    data = archive(*[(f"{index}.png", PHOTO) for index in range(11)])
    error = refusal(data)
    assert (error.status, error.code) == (413, "too_many_entries")
    assert "11 entries" in error.message and error.message.startswith("archive:")


def test_an_end_record_that_understates_the_entries_is_caught_by_the_directory():
    data = bytearray(archive(*[(f"{index}.png", PHOTO) for index in range(11)]))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)  # entries on this disk, entries in all
    assert refusal(bytes(data)).code == "too_many_entries"


def test_a_total_larger_than_allowed_is_refused_before_any_entry_is_read(monkeypatch):
    limits = ArchiveLimits(max_entries=10, max_total_bytes=1_000_000, max_ratio=100, max_photo_bytes=900_000)
    noise = bytes(range(256)) * 2400  # 614,400 bytes, stored as they are
    data = archive(("a.png", noise), ("b.png", noise), compression=zipfile.ZIP_STORED)
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *args, **kwargs: pytest.fail("an entry was read"))
    error = refusal(data, limits)
    assert (error.status, error.code) == (413, "archive_too_large")


def test_a_zip_bomb_is_refused_from_its_declared_ratio_without_being_expanded(monkeypatch):
    bomb = archive(("bomb.png", bytes(6 * 1024 * 1024)))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *args, **kwargs: pytest.fail("the bomb was expanded"))
    assert len(bomb) < 20_000
    error = refusal(bomb)
    assert (error.status, error.code) == (400, "archive_bomb")
    assert "bomb.png" in error.message


def test_a_bomb_whose_headers_lie_about_its_size_is_refused_after_reading_only_what_they_declare():
    # 200 MB of zeros deflate to about 200 kB; every header says the entry holds 1,000 bytes, so the ratio and the
    # total look harmless and only the bounded read can catch it.
    bomb = lie_about_size(archive(("bomb.png", bytes(200 * 1024 * 1024))), 1000)
    photos = opened(bomb, ArchiveLimits(10, 300 * 1024 * 1024, 100, 300 * 1024 * 1024))
    tracemalloc.start()
    try:
        with pytest.raises(ArchiveRefused) as refused:
            photos.read(photos.entries[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.code == "damaged_archive"
    assert peak < 2 * 1024 * 1024  # far less than the 200 MB it would expand to


@pytest.mark.parametrize("name", ["../escape.png", "photos/../../escape.png", "/etc/escape.png", "C:/escape.png",
                                  "photos\\..\\..\\escape.png"])
def test_a_path_out_of_the_archive_refuses_it(name):
    error = refusal(archive(("fine.png", PHOTO), (name, PHOTO)))
    assert (error.status, error.code) == (400, "unsafe_archive")
    assert "outside the archive" in error.message


def test_a_symbolic_link_refuses_the_archive():
    link = zipfile.ZipInfo("photo.png")
    link.create_system = 3  # Unix: external_attr holds the mode
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    error = refusal(archive(("fine.png", PHOTO), (link, b"/etc/passwd")))
    assert (error.code, "symbolic link" in error.message) == ("unsafe_archive", True)


def test_nested_archives_are_skipped_and_listed():
    photos = opened(archive(("fine.png", PHOTO), ("more.zip", archive(("x.png", PHOTO))), ("old.tar.gz", b"x")))
    assert [info.filename for info in photos.entries] == ["fine.png"]
    assert [(item.name, item.reason) for item in photos.skipped] == [
        ("more.zip", "nested archives are refused"), ("old.tar.gz", "nested archives are refused")]


def test_an_archive_under_a_photos_name_is_recognised_by_its_bytes():
    assert zip_upload.looks_like_archive(archive(("x.png", PHOTO)))
    assert not zip_upload.looks_like_archive(PHOTO)


def test_encrypted_entries_are_skipped_and_listed_never_read():
    # zipfile cannot write an encrypted entry: mark the second one so in both its headers, as an encrypting tool does.
    data = bytearray(archive(("fine.png", PHOTO), ("secret.png", PHOTO)))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        second = data.find(signature, data.find(signature) + 4)
        data[second + offset] |= 0x1
    photos = opened(bytes(data))
    assert [(item.name, item.reason) for item in photos.skipped] == [("secret.png", "encrypted entries are refused")]


def test_entries_compressed_otherwise_than_with_deflate_are_skipped():
    photos = opened(archive(("odd.png", PHOTO), compression=zipfile.ZIP_BZIP2))
    assert photos.entries == [] and "deflate" in photos.skipped[0].reason


def test_an_entry_larger_than_a_photo_may_be_is_skipped():
    limits = ArchiveLimits(max_entries=10, max_total_bytes=8 * 1024 * 1024, max_ratio=100,
                           max_photo_bytes=len(PHOTO) - 1)
    photos = opened(archive(("big.png", PHOTO)), limits)
    assert photos.entries == [] and "larger than the limit" in photos.skipped[0].reason


@pytest.mark.parametrize("data", [b"", b"not a zip at all", PHOTO, archive(("a.png", PHOTO))[:-30]])
def test_a_file_that_is_not_a_whole_zip_is_refused(data):
    assert refusal(data).code == "invalid_archive"


def test_an_entry_whose_bytes_differ_from_its_crc_is_refused_when_read():
    data = bytearray(archive(("a.png", PHOTO), compression=zipfile.ZIP_STORED))
    data[40] ^= 0xFF  # inside the stored photo
    photos = opened(bytes(data))
    with pytest.raises(ArchiveRefused) as refused:
        photos.read(photos.entries[0])
    assert refused.value.code == "damaged_archive"
