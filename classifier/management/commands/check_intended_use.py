"""python manage.py check_intended_use DIR [DIR ...] [--model PATH] [--json FILE]"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classifier.data import IMAGE_SUFFIXES


class Command(BaseCommand):
    help = (
        "Run the intended-use image check over every PNG/JPEG under each DIR (subfolders included) "
        "and print how many it flags: the flag rates of the README's table."
    )

    def add_arguments(self, parser):
        parser.add_argument("folders", nargs="+", help="image folders")
        parser.add_argument("--model", help="a .keras artifact (default: the active model version)")
        parser.add_argument("--json", help="also write the rates here")

    def handle(self, *args, **options):
        from classifier.artifact import ArtifactError
        from classifier.data import read_image
        from classifier.inference import Predictor
        from classifier.models import ModelVersion
        from classifier.registry import get_predictor

        try:
            if options["model"]:
                predictor = Predictor.load(options["model"])
            elif ModelVersion.active() is not None:
                predictor = get_predictor(ModelVersion.active())
            else:
                raise CommandError("no model version is active; pass --model PATH")
        except ArtifactError as error:
            raise CommandError(str(error)) from error
        if predictor.image_threshold is None:
            raise CommandError("this model has no intended-use image statistics (run fit_intended_use)")
        self.stdout.write(f"image threshold {predictor.image_threshold:.3f}")
        rows = {}
        for folder in options["folders"]:
            paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not paths:
                raise CommandError(f"{folder} holds no PNG or JPEG images")
            scores = []
            for start in range(0, len(paths), 32):
                scores.extend(predictor.image_scores([read_image(p) for p in paths[start : start + 32]]))
            flagged = sum(score > predictor.image_threshold for score in scores)
            rows[folder] = {"n": len(paths), "flagged": int(flagged), "share": flagged / len(paths)}
            self.stdout.write(f"{folder}: {flagged}/{len(paths)} flagged ({flagged / len(paths):.1%})")
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(rows, indent=2) + "\n")
