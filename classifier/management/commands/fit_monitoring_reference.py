"""python manage.py fit_monitoring_reference --model PATH --data DIR"""

from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from classifier.data import IMAGE_SUFFIXES

BINS = 10


def reference_of(values):
    """Decile bins of a reference sample: the 9 inner edges and each bin's share of the sample."""
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "shares": (counts / len(values)).tolist(), "n": len(values)}


class Command(BaseCommand):
    help = (
        "Store in an artifact's metadata the reference distributions that drift is measured against "
        "(radiology.monitoring): the decile bins of its calibrated probabilities and of its intended-use "
        "image scores over DIR (the validation split), as `monitoring_reference`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="the .keras artifact")
        parser.add_argument("--data", required=True, help="reference images (e.g. the validation split)")

    def handle(self, *args, **options):
        from classifier import artifact
        from classifier.data import read_image
        from classifier.inference import Predictor

        try:
            predictor = Predictor.load(options["model"])
        except artifact.ArtifactError as error:
            raise CommandError(str(error)) from error
        paths = sorted(
            p for p in Path(options["data"]).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not paths:
            raise CommandError(f"{options['data']} holds no PNG or JPEG images")
        probabilities, scores = [], []
        for start in range(0, len(paths), 32):
            pixels = [read_image(path) for path in paths[start : start + 32]]
            probabilities.extend(predictor.predict_proba(pixels))
            image_scores = predictor.image_scores(pixels)
            if image_scores is not None:
                scores.extend(image_scores)
        reference = {"data": Path(options["data"]).resolve().name, "probability": reference_of(probabilities)}
        if scores:
            reference["image_score"] = reference_of(scores)
        metadata = artifact.read_metadata(options["model"])
        artifact.write_metadata(options["model"], {**metadata, "monitoring_reference": reference})
        self.stdout.write(self.style.SUCCESS(f"monitoring reference from {len(paths)} images written"))
