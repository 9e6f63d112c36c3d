"""Page forms: they read and check what a person typed; the actions decide and store."""

from django import forms

from classifier.models import ModelVersion
from radiology.ingest import AcceptedFile, RefusedFile, RejectedUpload, check_dicom_patient, read_upload
from radiology.models import Label, Patient, Review


class DateInput(forms.DateInput):
    """The browser's date picker; its value is always ISO, whatever the site's locale."""

    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class PatientForm(forms.Form):
    mrn = forms.CharField(label="MRN", max_length=64, help_text="Medical record number.")
    name = forms.CharField(label="Full name", max_length=200)
    birth_date = forms.DateField(label="Date of birth", widget=DateInput)
    sex = forms.ChoiceField(choices=[("", "—")] + Patient.Sex.choices)


class PatientSearchForm(forms.Form):
    q = forms.CharField(label="Search by name or MRN", required=False, max_length=200)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one input. Their content is judged by `decode_upload`, file by file,
    so one bad file is refused with its reason while the others go through."""

    def __init__(self, **kwargs):
        super().__init__(
            widget=MultipleFileInput(
                attrs={"multiple": True, "accept": ".png,.jpg,.jpeg,.dcm,image/png,image/jpeg,application/dicom"}
            ),
            **kwargs,
        )

    def clean(self, data, initial=None):
        files = [f for f in (data if isinstance(data, (list, tuple)) else [data]) if f]
        if not files:
            raise forms.ValidationError("Choose at least one X-ray file.", code="required")
        return files


class UploadForm(forms.Form):
    """The patient (chosen, found by MRN, created, or read from the DICOM files) and the files.

    After validation: `accepted` and `refused` files, and either `cleaned_data["patient"]` or
    `new_patient` (details to create). When only a DICOM file names a patient who does not
    exist yet, `dicom_patient` holds its details so the page can offer them for creation.
    """

    patient = forms.ModelChoiceField(queryset=Patient.objects.all(), required=False, widget=forms.HiddenInput)
    mrn = forms.CharField(
        label="Patient MRN",
        max_length=64,
        required=False,
        help_text="Leave empty for DICOM files: the patient ID in the file is used.",
    )
    name = forms.CharField(label="Full name", max_length=200, required=False)
    birth_date = forms.DateField(label="Date of birth", required=False, widget=DateInput)
    sex = forms.ChoiceField(choices=[("", "—")] + Patient.Sex.choices, required=False)
    files = MultipleFileField(label="X-ray files (PNG, JPEG or DICOM; several at once)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.accepted, self.refused = [], []
        self.new_patient = None
        self.dicom_patient = None

    def clean(self):
        cleaned = super().clean()
        for uploaded in cleaned.get("files") or []:
            result = read_upload(uploaded)
            (self.accepted if isinstance(result, AcceptedFile) else self.refused).append(result)
        if self.errors:
            return cleaned
        patient = cleaned.get("patient") or self.find_patient(cleaned)
        if patient is not None:
            cleaned["patient"] = patient
            self.refuse_other_patients_dicom(patient.mrn)
        return cleaned

    def find_patient(self, cleaned):
        mrn = cleaned.get("mrn", "").strip()
        if mrn:
            patient = Patient.objects.filter(mrn=mrn).first()
            if patient is None:
                self.new_patient = self.details_to_create(mrn, cleaned)
            return patient
        dicom_ids = {f.decoded.dicom_patient["mrn"] for f in self.accepted if f.decoded.dicom_patient.get("mrn")}
        if len(dicom_ids) > 1:
            raise forms.ValidationError(
                f"These DICOM files belong to different patients ({', '.join(sorted(dicom_ids))}): upload them separately."
            )
        if not dicom_ids:
            if self.accepted:
                raise forms.ValidationError("Enter the patient's MRN (only DICOM files name their patient).")
            return None
        patient = Patient.objects.filter(mrn=dicom_ids.pop()).first()
        if patient is None:
            self.dicom_patient = next(
                f.decoded.dicom_patient for f in self.accepted if f.decoded.dicom_patient.get("mrn")
            )
            raise forms.ValidationError(
                f"No patient has MRN {self.dicom_patient['mrn']} (read from the DICOM file). "
                "Check the details below, then choose the files again to create the patient and upload."
            )
        return patient

    def details_to_create(self, mrn, cleaned):
        missing = [field for field in ("name", "birth_date", "sex") if not cleaned.get(field)]
        for field in missing:
            self.add_error(field, "Needed to create a new patient.")
        if missing:
            raise forms.ValidationError(f"No patient has MRN {mrn}: fill in their details to create them.")
        return {"mrn": mrn, "name": cleaned["name"], "birth_date": cleaned["birth_date"], "sex": cleaned["sex"]}

    def refuse_other_patients_dicom(self, mrn):
        for accepted in list(self.accepted):
            try:
                check_dicom_patient(accepted.decoded, mrn)
            except RejectedUpload as refusal:
                self.accepted.remove(accepted)
                self.refused.append(RefusedFile(accepted.name, str(refusal)))


class ReviewForm(forms.Form):
    # Either a decision on the model's label, or (a scan outside intended use, its output hidden)
    # the final label itself.
    decision = forms.ChoiceField(choices=Review.Decision.choices, required=False)
    final_label = forms.ChoiceField(choices=Label.choices, required=False)
    note = forms.CharField(
        label="Note (required to override)", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    # The latest review on the page when it was opened: a review recorded since makes this one stale.
    supersedes = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("decision") and not cleaned.get("final_label"):
            raise forms.ValidationError("Choose a decision.")
        return cleaned

    def decision_for(self, prediction):
        """The decision on `prediction` that the form states, or that its final label implies."""
        data = self.cleaned_data
        if data.get("decision"):
            return data["decision"]
        return Review.Decision.CONFIRM if data["final_label"] == prediction.label else Review.Decision.OVERRIDE


class DashboardFilterForm(forms.Form):
    model_version = forms.ModelChoiceField(
        queryset=ModelVersion.objects.all(), required=False, empty_label="All versions", to_field_name="version"
    )
    start = forms.DateField(label="Uploaded from", required=False, widget=DateInput)
    end = forms.DateField(label="Uploaded until", required=False, widget=DateInput)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end") and cleaned["start"] > cleaned["end"]:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label="User", required=False, max_length=150, help_text="Username, exactly.")
    action = forms.CharField(required=False, max_length=64, help_text="E.g. patient_data.read, or request.")
    object_type = forms.CharField(label="Record type", required=False, max_length=64, help_text="E.g. Patient, Scan.")
    object_id = forms.CharField(label="Record id", required=False, max_length=64)
    start = forms.DateField(label="From", required=False, widget=DateInput)
    end = forms.DateField(label="Until", required=False, widget=DateInput)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end") and cleaned["start"] > cleaned["end"]:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def used_filters(self):
        return {key: str(value) for key, value in self.cleaned_data.items() if value not in (None, "")}

    def filter(self, events):
        data = self.cleaned_data
        if data["actor"]:
            events = events.filter(actor__username=data["actor"])
        if data["action"]:
            events = events.filter(action__startswith=data["action"])
        if data["object_type"]:
            events = events.filter(object_type=data["object_type"])
        if data["object_id"]:
            events = events.filter(object_id=data["object_id"])
        if data["start"]:
            events = events.filter(created_at__date__gte=data["start"])
        if data["end"]:
            events = events.filter(created_at__date__lte=data["end"])
        return events
