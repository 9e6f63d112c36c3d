"""Bounds on what a DICOM file may make the decoder do, checked before any pixel is decoded.

A small file can otherwise ask for a great deal of memory: a Deflated dataset that inflates to
gigabytes, pixel data longer than its header says (frames nobody declared), or a compressed
frame whose own header is larger than the DICOM header (the codec allocates what the frame
says). Each check here refuses such a file while it costs at most the upload limit in memory.
"""

import struct
import zlib

from django.conf import settings

from radiology.ingest import RejectedUpload, readable_size

DICOM_PREAMBLE = 128
DICOM_HEADER = DICOM_PREAMBLE + 4  # preamble + "DICM"
RLE_HEADER = 64  # 16 little-endian uint32: the segment count, then 15 segment offsets
# JPEG start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC) and JPEG-LS's SOF55.
JPEG_FRAME_MARKERS = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)} | {0xF7}
JPEG_STANDALONE_MARKERS = set(range(0xD0, 0xDA)) | {0x01}  # RSTn, SOI, EOI, TEM: no length
INFLATE_PIECE = 256 * 1024
J2K_SIZ = b"\xff\x4f\xff\x51"  # start of codestream, then the image and tile size segment


def read_dicom(data: bytes):
    """The dataset of a DICOM file. A Deflated one is inflated here, never past the upload limit:
    pydicom would inflate all of it in one go, whatever its size."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    stream = DicomBytesIO(data)
    stream.seek(DICOM_HEADER)
    # The file meta group is always Explicit VR Little Endian and ends where group 0002 does.
    meta = FileMetaDataset(
        read_dataset(stream, is_implicit_VR=False, is_little_endian=True, stop_when=lambda tag, *_: tag >> 16 != 2)
    )
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return pydicom.dcmread(DicomBytesIO(data))
    inflated = inflate_bounded(memoryview(data)[stream.tell() :], settings.MAX_UPLOAD_BYTES)
    dataset = read_dataset(DicomBytesIO(inflated), is_implicit_VR=False, is_little_endian=True)
    read = FileDataset("upload", dataset, data[:DICOM_PREAMBLE], meta, is_implicit_VR=False, is_little_endian=True)
    read.set_original_encoding(False, True, dataset._character_set)
    return read


def inflate_bounded(deflated, limit: int) -> bytes:
    """Inflate raw deflate data of at most `limit` bytes. Its size is measured first, in small
    pieces that are thrown away, so refusing a bomb costs almost no memory; then it is
    inflated once into a buffer of exactly that size."""
    size = inflated_size(deflated, limit)
    if size > limit:
        raise RejectedUpload(
            f"The Deflated DICOM data inflates to more than the {readable_size(limit)} upload limit "
            "(a decompression bomb?)."
        )
    return zlib.decompress(deflated, -zlib.MAX_WBITS, max(size, 1))


def inflated_size(deflated, limit: int) -> int:
    """The inflated size of `deflated`, counted up to just past `limit`. Raises RejectedUpload when damaged."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size = 0
    try:
        for start in range(0, len(deflated), INFLATE_PIECE):
            pending = deflated[start : start + INFLATE_PIECE]
            while pending and size <= limit and not inflater.eof:
                size += len(inflater.decompress(pending, INFLATE_PIECE))
                pending = inflater.unconsumed_tail
            if size > limit or inflater.eof:
                break
    except zlib.error as error:
        raise RejectedUpload(f"The Deflated DICOM data is damaged and cannot be inflated ({error}).") from None
    if size <= limit and not inflater.eof:
        raise RejectedUpload("The Deflated DICOM data is truncated: it cannot be inflated.")
    return size


def check_native_length(dataset, rows, columns, samples, bits_allocated, frames):
    """Uncompressed pixel data must be exactly what the header describes (plus DICOM's even-length pad)."""
    expected = (rows * columns * samples * frames * bits_allocated + 7) // 8
    actual = len(dataset.PixelData)
    if actual != expected and not (expected % 2 and actual == expected + 1):
        raise RejectedUpload(
            f"The DICOM pixel data holds {actual:,} bytes, but its header ({rows} rows x {columns} columns x "
            f"{samples} samples x {bits_allocated} bits x {frames} frames) describes {expected:,}: "
            "the file is inconsistent."
        )


def first_frame(dataset, frames: int) -> bytes:
    from pydicom.encaps import get_frame

    return get_frame(dataset.PixelData, 0, number_of_frames=frames)


def check_compressed_frame(syntax, frame: bytes, rows, columns, samples, bits_allocated):
    """The first frame's own header must match the DICOM header: the codec sizes its output by
    the frame's header, so a small DICOM header must not hide a huge frame."""
    from pydicom import uid

    if syntax == uid.RLELossless:
        check_rle_frame(frame, rows * columns, samples * ((bits_allocated + 7) // 8))
        return
    if syntax in uid.JPEG2000TransferSyntaxes:
        found = j2k_frame_size(frame)
    elif syntax in uid.JPEGTransferSyntaxes or syntax in uid.JPEGLSTransferSyntaxes:
        found = jpeg_frame_size(frame)
    else:
        raise RejectedUpload(f"The DICOM pixel data is compressed as {syntax.name}, which this installation refuses.")
    if found is None:
        raise RejectedUpload(f"The first {syntax.name} frame has no readable image size: it is damaged.")
    if found != (rows, columns, samples):
        raise RejectedUpload(
            f"The first {syntax.name} frame is {found[1]}x{found[0]} pixels with {found[2]} samples, but the DICOM "
            f"header says {columns}x{rows} with {samples}: the file is inconsistent."
        )


def jpeg_frame_size(frame: bytes):
    """(rows, columns, components) from a JPEG or JPEG-LS start-of-frame segment, or None."""
    position = 2  # after the start-of-image marker
    while position + 4 <= len(frame):
        if frame[position] != 0xFF:
            return None
        marker = frame[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker in JPEG_FRAME_MARKERS:
            if position + 10 > len(frame):
                return None
            _precision, rows, columns, components = struct.unpack(">BHHB", frame[position + 4 : position + 10])
            return rows, columns, components
        (length,) = struct.unpack(">H", frame[position + 2 : position + 4])
        position += 2 + length
    return None


def j2k_frame_size(frame: bytes):
    """(rows, columns, components) from a JPEG 2000 SIZ segment (bare codestream or inside a JP2 box), or None."""
    start = frame.find(J2K_SIZ)
    if start < 0 or start + 4 + 38 > len(frame):
        return None
    # Lsiz, Rsiz (2 bytes each), then Xsiz, Ysiz, XOsiz, YOsiz, 4 tile fields (4 bytes each), Csiz (2).
    x_size, y_size, x_offset, y_offset = struct.unpack(">IIII", frame[start + 8 : start + 24])
    (components,) = struct.unpack(">H", frame[start + 40 : start + 42])
    return y_size - y_offset, x_size - x_offset, components


def check_rle_frame(frame: bytes, segment_length: int, segment_count: int):
    """Each RLE segment must decode to one byte plane of the frame, no more: a replicate run turns
    2 bytes into 128, so a small frame could otherwise decode to 64 times its size, and pydicom
    decodes a segment without a bound. The walk stops as soon as a segment is too long."""
    if len(frame) < RLE_HEADER:
        raise RejectedUpload("The RLE frame is shorter than its header: it is damaged.")
    header = struct.unpack("<16I", frame[:RLE_HEADER])
    if header[0] != segment_count:
        raise RejectedUpload(
            f"The RLE frame has {header[0]} segments where the DICOM header needs {segment_count}: it is inconsistent."
        )
    offsets = [*header[1 : segment_count + 1], len(frame)]
    for start, end in zip(offsets, offsets[1:], strict=False):
        if not RLE_HEADER <= start <= end <= len(frame):
            raise RejectedUpload("The RLE frame's segment offsets point outside it: it is damaged.")
        if rle_segment_length(frame, start, end, segment_length) > segment_length:
            raise RejectedUpload(
                f"An RLE segment decodes to more than the {segment_length:,} bytes the DICOM header allows."
            )


def rle_segment_length(frame: bytes, start: int, end: int, bound: int) -> int:
    """How many bytes frame[start:end] decodes to, counted up to just past `bound`."""
    length, position = 0, start
    while position < end and length <= bound:
        header = frame[position]
        if header < 128:  # a literal run of header + 1 bytes (cut short at the segment's end)
            length += max(0, min(header + 1, end - position - 1))
            position += header + 2
        elif header > 128:  # the next byte repeated 257 - header times (a trailing pad byte adds nothing)
            length += 257 - header if position + 1 < end else 0
            position += 2
        else:  # 128: no operation
            position += 1
    return length
