from django.apps import AppConfig


class PacsConfig(AppConfig):
    name = "radiology.pacs"
    label = "pacs"
    verbose_name = "PACS (DICOMweb)"
