"""DICOM files that ask the decoder for far more than their size: generated, never stored."""

import io
import struct
import zlib

import numpy as np

from tests.support.images import chest_like_pixels

PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian


def dataset_without_pixels(rows, columns, bits_allocated=8, number_of_frames=None, transfer_syntax=None):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    dataset.PatientID = "MRN-BOMB"
    dataset.Rows, dataset.Columns = rows, columns
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = bits_allocated
    dataset.BitsStored = bits_allocated
    dataset.HighBit = bits_allocated - 1
    dataset.PixelRepresentation = 0
    if number_of_frames is not None:
        dataset.NumberOfFrames = number_of_frames
    return dataset


def deflated_dicom(rows, columns, pixel_length, pixel_chunks, bits_allocated=8, number_of_frames=None) -> bytes:
    """A Deflated Explicit VR Little Endian file, compressed as a stream: its inflated size may be
    hundreds of megabytes without this process ever holding them."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    dataset = dataset_without_pixels(rows, columns, bits_allocated, number_of_frames, DeflatedExplicitVRLittleEndian)
    head = DicomBytesIO()
    head.write(dataset.preamble + b"DICM")
    write_file_meta_info(head, dataset.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, dataset)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflater.compress(body.getvalue() + PIXEL_DATA_TAG + b"OB\0\0" + struct.pack("<I", pixel_length))]
    parts += [deflater.compress(chunk) for chunk in pixel_chunks]
    parts.append(deflater.flush())
    return head.getvalue() + b"".join(parts)


def issue_bomb() -> bytes:
    """The file of issue 10: 800 frames of 512x512 8-bit zeros, Deflated, with no Number of
    Frames (about 200 KB on disk; 210 MB inflated; it was decoded as an (800, 512, 512) array)."""
    frame = bytes(512 * 512)
    return deflated_dicom(512, 512, 800 * len(frame), (frame for _ in range(800)))


def small_deflated(frames_in_data, number_of_frames=None, seed=0) -> bytes:
    """A 96x96 8-bit Deflated file holding `frames_in_data` frames of a synthetic chest."""
    frames = [chest_like_pixels(seed=seed + index).tobytes() for index in range(frames_in_data)]
    return deflated_dicom(96, 96, sum(map(len, frames)), frames, number_of_frames=number_of_frames)


def encapsulated_dicom(frame: bytes, transfer_syntax, rows, columns, bits_allocated) -> bytes:
    from pydicom.encaps import encapsulate

    dataset = dataset_without_pixels(rows, columns, bits_allocated, transfer_syntax=transfer_syntax)
    dataset.BitsStored = 12 if bits_allocated == 16 else bits_allocated
    dataset.HighBit = dataset.BitsStored - 1
    dataset.PixelData = encapsulate([frame])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    written = io.BytesIO()
    dataset.save_as(written, enforce_file_format=True)
    return written.getvalue()


def jpeg_2000_frame(pixels: np.ndarray) -> bytes:
    from PIL import Image

    codestream = io.BytesIO()
    Image.fromarray(pixels).save(codestream, "JPEG2000", no_jp2=True, irreversible=False)
    return codestream.getvalue()


def jpeg_frame(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def rle_frame(segments: list[bytes]) -> bytes:
    """An RLE frame of already-encoded segments, with its 64-byte header of offsets."""
    offsets, position = [], 64
    for segment in segments:
        offsets.append(position)
        position += len(segment)
    header = struct.pack("<16I", len(segments), *offsets, *([0] * (15 - len(segments))))
    return header + b"".join(segments)


def rle_literal_segment(plane: bytes) -> bytes:
    """Encode one byte plane as literal runs of up to 128 bytes (valid RLE, no compression)."""
    runs = [plane[start : start + 128] for start in range(0, len(plane), 128)]
    encoded = b"".join(bytes([len(run) - 1]) + run for run in runs)
    return encoded + (b"\0" if len(encoded) % 2 else b"")  # segments are padded to an even length
