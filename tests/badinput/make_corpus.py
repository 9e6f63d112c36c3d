"""Write the bad-input corpus in this folder: `python -m tests.badinput.make_corpus` from the project root.

Every file is small; the "huge" ones only declare huge sizes in their headers. The files are
kept in the repository so the tests read exactly the bytes described in README.md here.
"""

import io
import struct
import zlib
from pathlib import Path


from tests.support.images import dicom_bytes, jpeg_bytes, png_bytes

CORPUS = Path(__file__).resolve().parent


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width, height, bit_depth, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # grayscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def decompression_bomb_png() -> bytes:
    """A complete, valid 8000x8000 1-bit PNG (64 million pixels, 8 MB once decoded) in about 8 KB."""
    width = height = 8000
    row = b"\x00" + b"\x00" * (width // 8)  # filter byte + packed bits
    return png_declaring(width, height, 1, zlib.compress(row * height, 9))


def enormous_png() -> bytes:
    """Declares 100000x100000 (10 billion pixels); the data is one row: it must never be decoded."""
    return png_declaring(100_000, 100_000, 8, zlib.compress(b"\x00" * 100_001, 9))


def enormous_jpeg() -> bytes:
    """A small valid JPEG whose frame header is rewritten to declare 65000x65000."""
    data = bytearray(jpeg_bytes(seed=7))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 65000, 65000)  # after marker, length and precision
    return bytes(data)


def enormous_dicom() -> bytes:
    """A DICOM whose Rows and Columns declare 65535x65535 over a 96x96 pixel buffer."""
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_bytes(seed=8)))
    dataset.Rows = dataset.Columns = 65535
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def jpeg_lossless_dicom() -> bytes:
    """A DICOM labelled JPEG Lossless SV1 (no decoder for it is installed) with encapsulated pixel data.

    The fragment holds a JPEG start-of-image and lossless start-of-frame header only: the refusal must
    come from the missing decoder, named in the message, whatever the codestream.
    """
    from pydicom import dcmread
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1

    dataset = dcmread(io.BytesIO(dicom_bytes(seed=9)))
    dataset.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    frame = b"\xff\xd8" + b"\xff\xc3" + struct.pack(">HBHHB", 11, 12, 96, 96, 1) + b"\x01\x11\x00" + b"\xff\xd9"
    dataset.PixelData = encapsulate([frame])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = jpeg_bytes(seed=3)
    return data[: len(data) // 2]


CORPUS_FILES = {
    "empty.png": lambda: b"",
    "truncated.jpg": truncated_jpeg,
    "decompression_bomb.png": decompression_bomb_png,
    "enormous_dimensions.png": enormous_png,
    "enormous_dimensions.jpg": enormous_jpeg,
    "enormous_dimensions.dcm": enormous_dicom,
    "text_named.png": lambda: b"Patient list, ward 4\nThis is a text file with an image's name.\n",
    "no_pixel_data.dcm": lambda: dicom_bytes(seed=4, with_pixels=False),
    "jpeg_lossless.dcm": jpeg_lossless_dicom,
    "valid.png": lambda: png_bytes(seed=5),
}


def with_fixed_uids(data: bytes, number: int) -> bytes:
    """The same DICOM with fixed instance UIDs, so that writing the corpus again gives the same bytes."""
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(data))
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = f"2.25.{1000 + number}"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def main():
    for number, (name, make) in enumerate(CORPUS_FILES.items()):
        data = make()
        (CORPUS / name).write_bytes(with_fixed_uids(data, number) if name.endswith(".dcm") else data)
        print(f"{name}: {(CORPUS / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
