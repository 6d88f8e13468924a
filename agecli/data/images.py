"""Reading user images robustly: EXIF orientation, grayscale, alpha, 16-bit, odd names,
and the inputs that must never hang or exhaust memory (FIFOs, decompression bombs)."""
from __future__ import annotations

import io
import logging
import os
import stat
import warnings
from pathlib import Path

import cv2
import numpy as np

from ..errors import AgecliError

MAX_PIXELS = 120_000_000  # refuse absurd images with a message instead of exhausting memory
# The one list of what a folder walk takes as a photo (demo, prepare's readers): what
# agecli decodes, and the camera formats it has no decoder for, listed all the same so each
# gets a row saying so (an iPhone's .heic photos vanished from a run without a word).
NO_DECODER = {".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".psd": "Photoshop",
              **dict.fromkeys((".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"), "camera RAW")}
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".avif",
                              *NO_DECODER})
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


class ImageError(AgecliError):
    """An image that cannot be used; the message says why in a few words."""


def unreadable_folder(e: OSError) -> None:
    """os.walk's onerror: a folder that cannot be read is named in a warning (its images
    are left out), never skipped without a word."""
    logging.getLogger("agecli").warning("%s: cannot read this folder (%s); its images are left out",
                                        e.filename, e.strerror or e)


def read_regular(path: str | Path) -> bytes:
    """The bytes of a regular file; anything else (a FIFO, a device, a folder, a dangling
    link) raises ImageError at once instead of blocking on a read that never ends."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("unreadable: not a regular file")
        # O_NONBLOCK: should a FIFO replace the file after the check, the open does not wait
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ImageError("unreadable: not a regular file")
            return fh.read()
    except OSError as e:  # missing, no permission: name the file, or an API user cannot tell which
        raise ImageError(f"unreadable: {e.strerror or e}: {os.fspath(path)}") from None


def _opencv_only_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of a format OpenCV decodes and Pillow does not
    know (Radiance HDR, PFM, PAM); None for any other bytes."""
    head = data[:4096]
    try:
        if head.startswith(b"#?"):  # Radiance HDR: text lines, a blank line, then "-Y h +X w"
            lines = head.split(b"\n")
            blank = lines.index(b"")
            axes = lines[blank + 1].split()
            size = {axes[0][1:]: int(axes[1]), axes[2][1:]: int(axes[3])}
            return size[b"X"], size[b"Y"]
        if head[:3] in (b"PF\n", b"Pf\n"):  # PFM: "PF\n<w> <h>\n<scale>\n"
            w, h = head.split(b"\n")[1].split()[:2]
            return int(w), int(h)
        if head.startswith(b"P7\n"):  # PAM: "WIDTH w" and "HEIGHT h" lines before ENDHDR
            lines = head.split(b"\n")
            fields = dict(line.split(None, 1) for line in lines[1:lines.index(b"ENDHDR")] if line.strip())
            return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    except (ValueError, IndexError, KeyError):
        raise ImageError("unreadable: a header that declares no size") from None
    return None


def check_header(data: bytes) -> None:
    """Refuse an image whose header declares more than MAX_PIXELS, before any pixel is
    decoded (a 9 MB JPEG can declare 20000x20000, a 25 MB HDR file 20000x20000 floats).
    Pillow reads the size of the formats it knows, `_opencv_only_size` of those only
    OpenCV decodes; for other bytes cv2 decides, and the size is checked again after."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except Image.DecompressionBombError:  # Pillow's own limit is above ours
        raise ImageError(f"unreadable: the header declares more than {MAX_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        size = _opencv_only_size(data)
        if size is None:
            return
        w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(f"unreadable: {w}x{h} exceeds {MAX_PIXELS} pixels")


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode image bytes to RGB uint8; a JPEG that lacks only its end marker (what many
    cameras and interrupted copies leave) is decoded as viewers do. A JPEG cut short
    before its last rows is refused (`truncated`): its decoder fills the missing rows
    with one flat colour, and faces there would be silently lost."""
    if not data:
        raise ImageError("unreadable: empty file")
    check_header(data)
    buf = np.frombuffer(data, np.uint8)
    # IMREAD_COLOR applies EXIF orientation and turns gray/alpha/16-bit into 8-bit BGR.
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None and data.startswith(JPEG_START) and not data.rstrip(b"\0").endswith(JPEG_END):
        img = cv2.imdecode(np.frombuffer(data + JPEG_END, np.uint8), cv2.IMREAD_COLOR)
        if img is not None and img.shape[0] > 8 and np.ptp(img[-8:].reshape(-1, img.shape[-1]), axis=0).max() == 0:
            # no photo's last 8 rows are one exact colour; a scan that ran out of data is
            raise ImageError("unreadable: truncated JPEG (the file ends before its last rows)")
    if img is None and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        raise ImageError(f"unreadable: {_no_decoder('HEIC')}")
    if img is None:
        raise ImageError("unreadable: not a decodable image")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageError(f"unreadable: {img.shape[1]}x{img.shape[0]} exceeds {MAX_PIXELS} pixels")
    return np.ascontiguousarray(img[:, :, ::-1])


def load_rgb(path: str | Path) -> np.ndarray:
    """The image as RGB uint8 (H, W, 3), EXIF orientation applied.

    Raises ImageError for missing, empty, corrupt, oversized or non-image files and for
    anything that is not a regular file.
    """
    try:
        return decode_rgb(read_regular(path))
    except ImageError as e:
        kind = NO_DECODER.get(Path(path).suffix.lower())
        if kind and str(e) == "unreadable: not a decodable image":
            raise ImageError(f"unreadable: {_no_decoder(kind)}") from None
        raise


def _no_decoder(kind: str) -> str:
    return f"a {kind} file, which agecli has no decoder for; convert it to JPEG or PNG"

