"""The PACS over DICOMweb: new CR/DX instances are pulled in (QIDO-RS, WADO-RS) and fed to the upload
path; the results go back (STOW-RS) as DICOM SR and a Grad-CAM secondary capture through an outbox.

Standard DICOMweb only (no archive-specific API), so any PACS with DICOMweb works the same way.
"""
